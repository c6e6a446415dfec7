"""Where the reproduction keeps its files (paths against the checkout's root) and the digests its
caches are keyed by (parameters as JSON, arrays), beside :mod:`revisal.files`' atomic writes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from torch import Tensor

from revisal.files import atomic_write, digest_bytes

#: The folder holding the ``revisal`` package: a checkout when it is imported from one (an editable
#: install, ``PYTHONPATH``), ``site-packages`` when installed.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir()


def project_root() -> Path | None:
    """The repository root: the nearest folder at or above the working directory holding
    ``pyproject.toml`` and ``notebooks/``; else the checkout the ``revisal`` package is imported
    from (a notebook or command run from outside the checkout); None when neither is one."""
    here = Path.cwd().resolve()
    return next((c for c in (here, *here.parents, PACKAGE_PARENT) if _is_checkout(c)), None)


def project_path(path: str | os.PathLike) -> Path:
    """``path`` resolved against the repository root (:func:`project_root`), so notebooks write to
    the same place whatever their working directory; against the working directory when there
    is no checkout (an installed package run outside one)."""
    p = Path(path)
    if p.is_absolute():
        return p
    return (project_root() or Path.cwd().resolve()) / p


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` as a compressed ``.npz``, atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write(path, buf.getvalue())


def digest_json(value: Any) -> str:
    """sha256 of ``value`` as JSON with sorted keys: equal for equal parameters, whatever the order
    of their keys."""
    return digest_bytes(json.dumps(value, sort_keys=True).encode())


def digest_arrays(arrays: Mapping[str, np.ndarray | Tensor], context: str = "") -> str:
    """sha256 over ``context`` (what the arrays are, e.g. a run and part) and every array's name,
    dtype, shape and bytes, in name order. Tensors (e.g. a ``state_dict()``) count by their values."""
    h = hashlib.sha256()
    h.update(context.encode() + b"\0")
    for name in sorted(arrays):
        value = arrays[name]
        a = np.ascontiguousarray(value.detach().cpu().numpy() if isinstance(value, Tensor) else value)
        h.update(name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
