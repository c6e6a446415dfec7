"""Figures and tables land as complete files with sidecars; nothing is left half-written."""

from __future__ import annotations

import csv
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from revisal import plotting, report  # noqa: E402


def test_save_figure_writes_pdf_png_and_sidecar(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    files = report.save_figure(fig, "f", out_dir=tmp_path, profile="smoke", parameters={"k": (1, 2)}, seed=3)
    plt.close(fig)
    assert [f.name for f in files] == ["f.pdf", "f.png", "f.json"]
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    side = json.loads((tmp_path / "f.json").read_text())
    assert side["profile"] == "smoke" and side["seed"] == 3 and side["parameters"] == {"k": [1, 2]}
    assert "torch" in side["versions"] and side["files"] == ["f.pdf", "f.png"]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_pdf_is_reproducible(tmp_path):
    def draw():
        fig, ax = plt.subplots()
        ax.imshow(np.arange(16.0).reshape(4, 4))
        report.save_figure(fig, "g", out_dir=tmp_path, profile="p", parameters={})
        plt.close(fig)
        return (tmp_path / "g.pdf").read_bytes()

    assert draw() == draw()


def test_save_table_formats(tmp_path):
    rows = [{"method": "normgrad", "score_%": 84.123456}, {"method": "grad_cam", "score_%": 90.3}]
    report.save_table(rows, "t", out_dir=tmp_path, profile="mini", parameters={}, digits=1)
    got = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert got[0] == {"method": "normgrad", "score_%": "84.123456"}  # full precision
    assert "| normgrad | 84.1 |" in (tmp_path / "t.md").read_text()
    tex = (tmp_path / "t.tex").read_text()
    assert r"score\_\%" in tex and r"normgrad & 84.1 \\" in tex
    with pytest.raises(ValueError, match="same keys"):
        report.table_text([{"a": 1}, {"b": 2}])


def test_normalized_maps_to_unit_range_and_handles_constants():
    m = plotting.normalized(np.array([[1.0, 3.0], [2.0, 5.0]]), size=(4, 4))
    assert m.shape == (4, 4) and m.min() == 0 and m.max() == 1
    assert np.all(plotting.normalized(np.ones((3, 3))) == 0)


def test_blend_accepts_uint8_and_grid_shows_plain_images_for_none():
    picture = np.full((4, 4, 3), 255, dtype=np.uint8)
    heat = np.zeros((2, 2))
    np.testing.assert_allclose(plotting.blend(picture, heat, alpha=0.0), 1.0)  # uint8 read as [0, 255]
    fig = plotting.grid(None, {"a": [None, heat]}, ["", "map"], images=[picture])
    plain, overlaid = fig.axes
    np.testing.assert_array_equal(plain.images[0].get_array(), picture)  # drawn as given, no heat
    assert overlaid.get_title() == "map" and plain.get_title() == ""
