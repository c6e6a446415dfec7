"""Result caches: keyed by a parameter hash, written atomically in parts, verified on every read.

A run lives in ``data/cache/<kind>/<key>/``: ``spec.json`` (what was asked) and one
``part-NNNNN.npz`` per chunk of work, each carrying a digest of its own arrays. The key hashes the
run's parameters together with the model's weights checksum, the dataset's description and the
version of revisal's code (its syntax trees: comments and docstrings do not count), so a change to
any of them starts a fresh run. Because parts are independent files, a killed run resumes with the
first missing part, shards of one run (``--shard i/n``, or one per ``torchrun`` rank) write
disjoint parts of the same directory, and a part that fails its digest (truncated, edited) is
recomputed rather than used. The digest covers the part's
place too (kind, run key, part index), so a part copied or moved into another part's slot or into
another run's folder fails it as well.
"""

from __future__ import annotations

import ast
import json
import numbers
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from reproduction.storage import digest_arrays, digest_json, project_path, save_npz
from revisal.files import atomic_write, jsonable
from revisal.models import ZooModel

CACHE_ROOT = "data/cache"
_DIGEST_KEY = "__digest__"
_PLACE_KEY = "__part__"  # where the part was written: "<kind>/<key>/<index>" (for the warning)

#: Modules that do not shape cached numbers: figure and table writers (with the published numbers
#: they print beside ours), command lines, downloads and parameter checks. Paths relative to revisal/.
NOT_IN_CODE_VERSION = ("plotting.py", "charts.py", "report.py", "paper.py", "tables.py", "datasets/download.py",
                       "params.py", "parameter_checks.py", "checks.py", "verdicts.py", "readme.py", "studies/__init__.py",
                       "provenance.py")


def source_digest(root: str | os.PathLike) -> str:
    """sha256 over the code of every ``.py`` file under ``root`` (``__main__.py`` and
    :data:`NOT_IN_CODE_VERSION` left out): each file's path and its parsed syntax tree without
    docstrings (``ast.dump``), so comments, docstrings and layout do not count, code does. The tree
    is the running Python's, so a new Python version may give new keys."""
    root = Path(root)
    code = {}
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if path.name == "__main__.py" or name in NOT_IN_CODE_VERSION or name.startswith("studies/"):
            continue
        tree = ast.parse(path.read_bytes(), name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                        and isinstance(first.value.value, str):
                    node.body = node.body[1:]
        code[name] = ast.dump(tree)
    return digest_json(code)


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the code that shapes numbers, the library's and the reproduction's (see
    :func:`source_digest`; file names relative to each package)."""
    import revisal

    return digest_json({"revisal": source_digest(Path(revisal.__file__).resolve().parent),
                        "reproduction": source_digest(Path(__file__).resolve().parent)})[:16]


def weights_checksum(model: nn.Module) -> str:
    """sha256 over the model's state (names, dtypes, shapes and values of parameters and buffers)."""
    return digest_arrays(model.state_dict())[:16]


def digest(arrays: Mapping[str, np.ndarray], place: str = "") -> str:
    """sha256 over ``place`` (what the arrays are: run and part) and every array's name, dtype,
    shape and bytes (the part's own digest and place entries left out)."""
    return digest_arrays({k: v for k, v in arrays.items() if k not in (_DIGEST_KEY, _PLACE_KEY)}, place)


def input_key(value: Any) -> Any:
    """What a run's input contributes to its cache key, as JSON: a zoo model its name and weights
    checksum, a module its weights checksum, a tensor a digest of its values, a path its file's
    digest, a data source its ``describe()``, a dataclass (``MetaStep``) its fields, a function its
    qualified name (never its address), containers element-wise, plain values as they are."""
    import dataclasses
    import inspect

    from revisal.files import digest_file

    if isinstance(value, ZooModel):
        return {"name": value.name, "weights": weights_checksum(value.model)}
    if isinstance(value, nn.Module):
        return weights_checksum(value)
    if isinstance(value, torch.Tensor):
        return digest_arrays({"": value})[:16]
    if isinstance(value, Path):
        return digest_file(value)[:16]
    if hasattr(value, "describe") and callable(value.describe):
        return value.describe()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: input_key(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if inspect.isfunction(value) or inspect.isbuiltin(value) or isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, Mapping):
        return {str(k): input_key(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [input_key(v) for v in value]
    return jsonable(value)


def run_cache(kind: str, cache_root: str | os.PathLike | None, **inputs: Any) -> "RunCache":
    """The cache of a ``kind`` run, keyed by every input that shapes its numbers (:func:`input_key`)."""
    return RunCache(kind, {name: input_key(value) for name, value in inputs.items()}, cache_root)


class IncompleteRun(RuntimeError):
    """A merge asked for results whose parts have not all been computed yet."""


class RunCache:
    """The parts of one run. ``enabled=False`` keeps everything in memory (nothing read or written)."""

    def __init__(self, kind: str, spec: Mapping[str, Any], root: str | os.PathLike | None = CACHE_ROOT):
        self.kind = kind
        self.spec = {**jsonable(spec), "code": code_version()}
        self.key = digest_json({"kind": kind, **self.spec})[:20]
        self.enabled = root is not None
        self.path = project_path(root) / kind / self.key if self.enabled else None
        self._memory: dict[int, dict[str, np.ndarray]] = {}

    def _part_path(self, part: int) -> Path:
        return self.path / f"part-{part:05d}.npz"

    def place(self, part: int) -> str:
        """What part ``part`` of this run is, bound into its digest: ``"<kind>/<key>/<part>"``."""
        return f"{self.kind}/{self.key}/{part}"

    def load(self, part: int) -> dict[str, np.ndarray] | None:
        """The part's arrays if present and intact; a corrupt or misplaced part is reported and ignored."""
        if not self.enabled:
            return self._memory.get(part)
        path = self._part_path(part)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            stored, written_as = str(arrays.pop(_DIGEST_KEY)), str(arrays.pop(_PLACE_KEY, ""))
            ok = stored == digest(arrays, self.place(part))
        except Exception:
            ok, written_as = False, ""
        if not ok:
            if written_as and written_as != self.place(part):
                problem = f"cache part written as {written_as!r} belongs to another part or run (copied or moved?)"
            else:
                problem = "corrupt cache part (digest mismatch or unreadable)"
            warnings.warn(f"{path}: {problem}; recomputing", stacklevel=2)
            return None
        return arrays

    def save(self, part: int, arrays: Mapping[str, np.ndarray]) -> None:
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        if _DIGEST_KEY in arrays or _PLACE_KEY in arrays:
            raise ValueError(f"arrays: the names {_DIGEST_KEY!r} and {_PLACE_KEY!r} are reserved")
        if not self.enabled:
            self._memory[part] = arrays
            return
        if not (self.path / "spec.json").is_file():
            atomic_write(self.path / "spec.json", json.dumps({"kind": self.kind, **self.spec}, indent=2) + "\n")
        place = self.place(part)
        save_npz(self._part_path(part), {**arrays, _DIGEST_KEY: np.array(digest(arrays, place)),
                                         _PLACE_KEY: np.array(place)})


_TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` or ``(i, n)`` with ``0 ≤ i < n``; ``None``: from ``torchrun``'s RANK and WORLD_SIZE
    (both or neither), else ``(0, 1)``. Anything else is a ValueError naming what is wrong, so a
    shard never silently computes nothing (or everything twice)."""
    if shard is None:
        return _torchrun_shard()
    if isinstance(shard, str):
        parts = shard.split("/")
        try:
            i, n = (int(v) for v in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            i = n = None
        if i is None:
            raise ValueError(f"shard: expected 'i/n' with integers 0 ≤ i < n, got {shard!r}")
    elif isinstance(shard, tuple) and len(shard) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shard):
        i, n = int(shard[0]), int(shard[1])
    else:
        raise ValueError(f"shard: expected 'i/n' or a pair of ints (i, n), got {shard!r}")
    if not 0 <= i < n:
        raise ValueError(f"shard: expected 0 ≤ i < n, got {i}/{n}")
    return i, n


def _torchrun_shard() -> tuple[int, int]:
    env = {k: os.environ.get(k) for k in _TORCHRUN}
    if env["RANK"] is None and env["WORLD_SIZE"] is None:
        if env["LOCAL_RANK"] is not None:
            raise ValueError(f"shard: LOCAL_RANK={env['LOCAL_RANK']} is set but RANK and WORLD_SIZE are not, so this "
                             "process cannot know its shard; launch with torchrun (which sets all three) or pass "
                             "--shard i/n")
        return 0, 1
    missing = [k for k in ("RANK", "WORLD_SIZE") if env[k] is None]
    if missing:
        given = ", ".join(f"{k}={v}" for k, v in env.items() if v is not None)
        raise ValueError(f"shard: {given} is set but {missing[0]} is not; torchrun sets RANK and WORLD_SIZE together "
                         "(or pass --shard i/n)")
    values = {}
    for k in ("RANK", "WORLD_SIZE"):
        try:
            values[k] = int(env[k])
        except ValueError:
            raise ValueError(f"shard: {k}={env[k]!r} is not an integer") from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: RANK={rank}, WORLD_SIZE={world}: expected WORLD_SIZE ≥ 1 and "
                         "0 ≤ RANK < WORLD_SIZE")
    return rank, world


def device_of(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
