"""Files on disk: project paths, atomic writes and sha256 digests.

Everything revisal writes (figures, tables, result caches, the testbed, checkpoints) goes through
:func:`atomic_write`: a temporary sibling, flushed and synced, then ``os.replace``, so an
interrupted run never leaves a half-written file. Digests are sha256 hex strings (callers shorten
them for keys); the same bytes, arrays or parameters always give the same digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from torch import Tensor


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


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` as a compressed ``.npz``, atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write(path, buf.getvalue())


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: mappings (keys as strings), lists, numbers, strings, ``None``;
    numpy/torch scalars by value, anything else by ``str``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def digest_bytes(data: bytes) -> str:
    """sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def digest_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
