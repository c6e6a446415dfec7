"""Where each figure and table comes from: the provenance every sidecar records, and the manifest.

A sidecar's ``provenance`` (:func:`record`) holds the git commit of the checkout and whether its code
differed from that commit (``dirty``: tracked or untracked changes outside ``figures/`` and the
generated README), the notebook and cell that wrote the output, the profile's config file and a hash
of the resolved parameters, the versions of torch, torchvision and revisal, the device (CPU model or
GPU name) and the seconds since the notebook started. ``figures/MANIFEST.json`` (:func:`manifest`,
written by ``make figures``) lists every output with its sidecar's provenance and the notebook's wall
time from papermill's record of the run.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from reproduction.storage import digest_json, project_root

_STARTED = time.monotonic()  # this process (a notebook's kernel) imported the reproduction
#: Generated or written by the runs themselves: they do not make the code differ from its commit.
OUTPUTS = ("figures", "README.md")


def versions() -> dict[str, str]:
    """Versions of the interpreter and of the packages that shape the numbers."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("revisal", "torch", "torchvision", "timm", "numpy", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git(*args: str) -> str | None:
    root = project_root()
    if root is None:
        return None
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout, read once per process (the
    runs' own outputs, :data:`OUTPUTS`, do not count); None outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", ".", *(f":(exclude){p}" for p in OUTPUTS)) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@lru_cache(maxsize=None)
def device_name(device: str) -> str:
    """The GPU's name for a CUDA device, else the CPU model (``/proc/cpuinfo``, else the platform's)."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cell() -> str | None:
    """The executing cell as Jupyter numbers it (``In [n]``), when run in a kernel. IPython counts a
    cell before running it: while cell ``In [n]`` runs, the shell's ``execution_count`` is already n + 1."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return f"In [{shell.execution_count - 1}]" if shell is not None else None


def record(profile: str, parameters: Mapping[str, Any], notebook: str | None) -> dict[str, Any]:
    """The provenance of an output written now, by ``notebook``, with ``parameters``."""
    config = f"configs/{profile}.yaml"
    root = project_root()
    known = versions()
    return {
        **git_state(),
        "notebook": notebook,
        "cell": _cell(),
        "config": config if root is not None and (root / config).is_file() else None,
        "parameters_sha256": digest_json(dict(parameters))[:16],
        "versions": {k: known[k] for k in ("torch", "torchvision", "revisal") if k in known},
        "device": device_name(str(parameters.get("device", "cpu"))),
        "notebook_elapsed_s": round(time.monotonic() - _STARTED, 1),
    }


def manifest(figures: Path, executed: Path | None = None) -> dict[str, Any]:
    """Every output of ``figures`` (one per JSON sidecar) with its files and provenance, plus each
    notebook's wall time from its executed copy in ``executed`` (papermill's ``duration``)."""
    walls = {}
    for nb in sorted(executed.glob("*.ipynb")) if executed is not None and executed.is_dir() else []:
        duration = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {}).get("duration")
        walls[nb.stem] = None if duration is None else round(float(duration), 1)
    outputs = {}
    for side in sorted(figures.glob("*.json")):
        if side.name == "MANIFEST.json":
            continue
        data = json.loads(side.read_text())
        prov = data.get("provenance") or {}
        outputs[side.stem] = {"kind": data.get("kind"), "files": data.get("files", []), **prov,
                              "notebook_wall_s": walls.get(prov.get("notebook") or "")}
    commits = sorted({o.get("commit") for o in outputs.values() if o.get("commit")})
    return {"outputs": outputs, "commits": commits,
            "dirty": any(o.get("dirty") for o in outputs.values()), "notebooks_wall_s": walls}


def write_manifest(figures: Path, executed: Path | None = None) -> Path:
    """``figures/MANIFEST.json`` from :func:`manifest` (written atomically)."""
    from revisal.files import atomic_write

    return atomic_write(figures / "MANIFEST.json", json.dumps(manifest(figures, executed), indent=2, sort_keys=True)
                        + "\n")


def status(figures: Path) -> tuple[str, bool]:
    """A line on the committed figures' commit, and whether HEAD's code (outside :data:`OUTPUTS`) is
    still that commit's."""
    path = figures / "MANIFEST.json"
    if not path.is_file():
        return f"{path}: no manifest (make figures writes it)", False
    data = json.loads(path.read_text())
    commits, head = data.get("commits", []), _git("rev-parse", "HEAD")
    if len(commits) != 1 or head is None:
        return f"figures from commits {commits or 'unknown'}; HEAD {head or 'unknown'}", False
    same = _git("diff", "--quiet", commits[0], "HEAD", "--", ".", *(f":(exclude){p}" for p in OUTPUTS)) is not None
    dirty = " (its tree had changes)" if data.get("dirty") else ""
    verdict = "HEAD's code is the code of that commit" if same else "HEAD's code differs from it"
    return f"figures from commit {commits[0][:12]}{dirty}; HEAD is {head[:12]}: {verdict}", same and not dirty


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reproduction.provenance", description=__doc__.splitlines()[0])
    parser.add_argument("--figures", default="figures")
    parser.add_argument("--write", metavar="EXECUTED", help="write figures/MANIFEST.json, with the wall times of the "
                                                            "executed notebooks in this folder")
    args = parser.parse_args(argv)
    from reproduction.storage import project_path

    figures = project_path(args.figures)
    if args.write is not None:
        print(write_manifest(figures, project_path(args.write)))
        return 0
    line, current = status(figures)
    print(line)
    return 0 if current else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
