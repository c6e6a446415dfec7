"""What ``python -m revisal explain`` writes: refused up front when ``--out`` cannot take it, PNG by
default, PDF on request, no figure with ``--maps-only``, the run's table, and a figure drawn once
per run whose every redraw equals a freshly built one."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from explain_fixtures import TINY, photos

from revisal.__main__ import main


def _refused(capsys, argv: list[str], out: Path) -> str:
    """Run the CLI; expect exit status 2, no image explained, no traceback; the message."""
    rc = main(["explain", *argv, *TINY, "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "", captured
    assert "Traceback" not in captured.err and "--out" in captured.err
    return captured.err


class _Unwritable:
    """A folder no one can create files in: mode 0o555, or, as root (who ignores modes), the
    immutable attribute (``chattr +i``); removed again on exit."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        self.path.mkdir()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(self.path)],
                                                                capture_output=True).returncode != 0:
                pytest.skip("running as root, which ignores folder modes, and chattr +i is not available here "
                            "(a file system without the immutable attribute, or no CAP_LINUX_IMMUTABLE)")
            self.undo = ["chattr", "-i", str(self.path)]
        else:
            self.path.chmod(0o555)
            self.undo = None
        return self.path

    def __exit__(self, *exc) -> None:
        if self.undo:
            subprocess.run(self.undo, check=True)
        else:
            self.path.chmod(0o755)


def _file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "file.txt", "exists and is not a folder"


def _below_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "file.txt" / "sub" / "out", "file.txt is a file, not a folder"


def _taken(tmp_path):
    (tmp_path / "taken" / "img1.png").mkdir(parents=True)
    return tmp_path / "taken", "holds folders where files go: ['img1.png']"


OUTS = {"a file": _file, "below a file": _below_file, "an output name is a folder": _taken,
        "unwritable folder": lambda tmp_path: (Path("."), "is not writable"),
        "inside an unwritable folder": lambda tmp_path: (Path("new") / "out", "cannot create a folder in")}


@pytest.mark.parametrize("case", OUTS)
def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys, case):
    """--out that is a file, below a file, an unwritable folder (itself or its parent), or a folder
    where an output file would be a folder: exit status 2 and a message naming --out, before any
    image is explained; nothing is written."""
    images = [str(p) for p in photos(tmp_path / "photos", 2)]
    out, message = OUTS[case](tmp_path)
    if "unwritable" in case:
        with _Unwritable(tmp_path / "locked") as locked:
            assert message in _refused(capsys, images, locked / out)
            assert list(locked.iterdir()) == []
    else:
        before = sorted(tmp_path.rglob("*"))
        assert message in _refused(capsys, images, out)
        assert sorted(tmp_path.rglob("*")) == before


def test_png_by_default_pdf_on_request_maps_only(tmp_path, capsys):
    """The default writes maps, PNG and sidecar; --pdf adds the PDF; --maps-only draws nothing.
    The maps are the same bytes in every mode, and explanations.csv agrees with the sidecars."""
    images = [str(p) for p in photos(tmp_path / "photos", 2)]
    figures = {"default": ["png"], "pdf": ["png", "pdf"], "maps": []}
    for mode, flags in (("default", []), ("pdf", ["--pdf"]), ("maps", ["--maps-only"])):
        argv = ["explain", *images, *TINY, "--methods", "gradient", "normgrad", "--out", str(tmp_path / mode), *flags]
        assert main(argv) == 0
        files = {p.name for p in (tmp_path / mode).iterdir()}
        assert files == {f"img{i}.{ext}" for i in range(2) for ext in ["npy", "json", *figures[mode]]} | {
            "explanations.csv"}
        for i in range(2):
            sidecar = json.loads((tmp_path / mode / f"img{i}.json").read_text())
            assert sidecar["figures"] == [f"img{i}.{ext}" for ext in figures[mode]]
            assert sidecar["model_mode"].startswith("eval")
    for i in range(2):
        maps = [(tmp_path / mode / f"img{i}.npy").read_bytes() for mode in figures]
        assert maps[0] == maps[1] == maps[2]
    with open(tmp_path / "maps" / "explanations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        sidecar = json.loads((tmp_path / "maps" / f"img{i}.json").read_text())
        assert row["image"] == images[i] and int(row["target"]) == sidecar["target"]["index"]
        assert [int(row[f"top{k}"]) for k in (1, 2, 3)] == [t["index"] for t in sidecar["top5"]]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["explain", *images, *TINY, "--out", str(tmp_path / "x"), "--pdf", "--maps-only"])
    assert "--pdf" in capsys.readouterr().err


def test_a_redrawn_figure_equals_a_fresh_one():
    """The run's figure is built once and redrawn per image; each redraw gives the same PNG bytes
    as a figure built for that image alone, also when a row's maps change sign (its colour map and
    colour bar change), a map is all zeros, or the title changes length."""
    from revisal.plotting import MapGrid

    rng = np.random.default_rng(0)
    first = rng.random((2, 3, 16, 16)).astype(np.float32)  # both rows non-negative
    second = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)  # both rows signed, lower resolution
    second[1, 2] = 0
    drawings = [(rng.random((16, 16, 3)), first, "first"), (rng.random((16, 16, 3)), second, "a longer $title$"),
                (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), first[::-1], "third")]
    reused = MapGrid(["m1", "m2"], ["l1", "(input)", "l3"], 16)
    for image, maps, title in drawings:
        reused.draw(image, maps, title)
        fresh = MapGrid(["m1", "m2"], ["l1", "(input)", "l3"], 16)
        fresh.draw(image, maps, title)
        assert reused.png() == fresh.png()
    with pytest.raises(ValueError, match=r"maps: expected \[1, 3, H, W\]"):
        MapGrid(["m1"], ["l1", "(input)", "l3"], 16).draw(drawings[0][0], first)
    with pytest.raises(ValueError, match=r"image: expected \[16, 16, 3\]"):
        reused.draw(np.zeros((8, 8, 3)), first)
