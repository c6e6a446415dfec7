"""Result caches: keyed by a parameter hash, written atomically in parts, verified on every read.

A run lives in ``data/cache/<kind>/<key>/``: ``spec.json`` (what was asked) and one
``part-NNNNN.npz`` per chunk of work, each carrying a digest of its own arrays. The key hashes the
run's parameters together with the model's weights checksum, the dataset's description and the
version of revisal's code, so a change to any of them starts a fresh run. Because parts are
independent files, a killed run resumes with the first missing part, shards of one run (``--shard
i/n``, or one per ``torchrun`` rank) write disjoint parts of the same directory, and a part that
fails its digest (truncated, edited) is recomputed rather than used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..report import _jsonable, atomic_write, project_path

CACHE_ROOT = "data/cache"
_DIGEST_KEY = "__digest__"


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of revisal's source that shapes numbers (figure/table writers excluded)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.name in ("plotting.py", "report.py", "__main__.py"):
            continue
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def weights_checksum(model: nn.Module) -> str:
    """sha256 over the model's state (names, shapes and values of parameters and buffers)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == _DIGEST_KEY:
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class RunCache:
    """The parts of one run. ``enabled=False`` keeps everything in memory (nothing read or written)."""

    def __init__(self, kind: str, spec: Mapping[str, Any], root: str | os.PathLike | None = CACHE_ROOT):
        self.kind = kind
        self.spec = {**_jsonable(spec), "code": code_version()}
        self.key = hashlib.sha256(json.dumps({"kind": kind, **self.spec}, sort_keys=True).encode()).hexdigest()[:20]
        self.enabled = root is not None
        self.path = project_path(root) / kind / self.key if self.enabled else None
        self._memory: dict[int, dict[str, np.ndarray]] = {}

    def _part_path(self, part: int) -> Path:
        return self.path / f"part-{part:05d}.npz"

    def load(self, part: int) -> dict[str, np.ndarray] | None:
        """The part's arrays if present and intact; a corrupt part is reported and ignored."""
        if not self.enabled:
            return self._memory.get(part)
        path = self._part_path(part)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            ok = str(arrays.pop(_DIGEST_KEY)) == digest(arrays)
        except Exception:
            ok = False
        if not ok:
            warnings.warn(f"{path}: corrupt cache part (digest mismatch or unreadable); recomputing", stacklevel=2)
            return None
        return arrays

    def save(self, part: int, arrays: Mapping[str, np.ndarray]) -> None:
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        if not self.enabled:
            self._memory[part] = arrays
            return
        if not (self.path / "spec.json").is_file():
            atomic_write(self.path / "spec.json", json.dumps({"kind": self.kind, **self.spec}, indent=2) + "\n")
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays, **{_DIGEST_KEY: np.array(digest(arrays))})
        atomic_write(self._part_path(part), buf.getvalue())


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` or ``(i, n)``; default from ``torchrun``'s RANK/WORLD_SIZE, else ``(0, 1)``."""
    if shard is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard: expected 'i/n', got {shard!r}") from None
    else:
        i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard: expected 0 ≤ i < n, got {i}/{n}")
    return i, n


def device_of(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
