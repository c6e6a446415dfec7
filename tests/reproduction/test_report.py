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

from reproduction import charts, report
from revisal import plotting


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


def test_save_figure_writes_the_plotted_values_beside_it_at_readable_dpi(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [2, 3])
    files = report.save_figure(fig, "v", out_dir=tmp_path, profile="p", parameters={},
                               values=[{"x": 0, "y": 2.0}, {"x": 1, "y": 3.0}])
    assert [f.name for f in files] == ["v.pdf", "v.png", "v.csv", "v.json"]
    assert (tmp_path / "v.csv").read_text() == "x,y\n0,2.0\n1,3.0\n"
    from PIL import Image

    assert Image.open(tmp_path / "v.png").size[0] >= 2 * 150 * 0.9  # 150 dpi (bbox "tight" trims a little)
    with pytest.raises(ValueError, match="dpi: expected an int ≥ 150"):
        report.save_figure(fig, "w", out_dir=tmp_path, profile="p", parameters={}, dpi=100)
    plt.close(fig)


def test_scaled_keeps_zero_at_zero_and_the_sign():
    m = plotting.scaled(np.array([[-1.0, 3.0], [0.0, 1.5]]))
    np.testing.assert_allclose(m, [[-1 / 3, 1.0], [0.0, 0.5]])
    assert plotting.scaled(np.array([[2.0, 4.0]]), size=(3, 5)).shape == (3, 5)
    assert np.all(plotting.scaled(np.zeros((3, 3))) == 0)


def test_signed_maps_get_a_diverging_map_centred_at_zero_non_negative_a_sequential_one():
    fig, (a, b) = plt.subplots(1, 2)
    picture = np.full((8, 8, 3), 0.5)
    signed = plotting.show_map(a, picture, np.array([[-2.0, 1.0], [0.0, 0.5]]))
    positive = plotting.show_map(b, picture, np.array([[0.0, 1.0], [2.0, 0.5]]))
    assert signed.get_cmap().name == plotting.DIVERGING and signed.get_clim() == (-1.0, 1.0)
    assert positive.get_cmap().name == plotting.SEQUENTIAL and positive.get_clim() == (0.0, 1.0)
    # zero is drawn with the diverging map's middle colour (white-ish), whatever the map's range
    middle = np.array(signed.get_cmap()(0.5)[:3])
    assert np.all(middle > 0.9)
    assert signed.norm(0.0) == pytest.approx(0.5)
    plt.close(fig)


def test_grid_has_a_colour_bar_per_row_values_and_plain_images_for_none():
    picture = np.full((4, 4, 3), 255, dtype=np.uint8)
    heat = np.array([[0.0, 1.0], [2.0, 3.0]])
    fig, values = charts.grid(None, {"a": [None, heat], "b": [None, -heat]}, ["", "map"], images=[picture, picture],
                                notes={"b": [None, "ρ = 0.50"]})
    plain, overlaid, plain_b, overlaid_b, bar_a, bar_b = fig.axes
    np.testing.assert_array_equal(plain.images[0].get_array(), picture)  # drawn as given, no heat
    assert overlaid.get_title() == "map" and plain.get_title() == ""
    assert overlaid.images[-1].get_cmap().name == plotting.SEQUENTIAL
    assert overlaid_b.images[-1].get_cmap().name == plotting.DIVERGING
    assert "signed" in bar_b.get_ylabel() and "signed" not in bar_a.get_ylabel()
    assert any(t.get_text() == "ρ = 0.50" for t in overlaid_b.texts)
    assert len(values) == 8 and values[3] == {"row": "a", "column": "map", "y": 1, "x": 1, "value": 3.0}
    plt.close(fig)
    big = charts.map_values({"r": [np.arange(64.0 * 64).reshape(64, 64)]}, ["c"], max_side=32)
    assert len(big) == 32 * 32 and big[0]["value"] == np.arange(64.0 * 64).reshape(64, 64)[:2, :2].mean()


def test_show_map_marks_the_maximum_and_outlines_a_mask():
    fig, ax = plt.subplots()
    heat = np.zeros((8, 8))
    heat[2, 5] = 1.0
    mask = np.zeros((8, 8), dtype=bool)
    mask[1:4, 4:7] = True
    plotting.show_map(ax, np.zeros((8, 8, 3)), heat, mark_max=True, outline=mask)
    x, y = ax.lines[0].get_data()
    assert (x[0], y[0]) == (5, 2)
    assert ax.collections  # the contour
    plt.close(fig)


def test_png_pixels_are_matplotlibs_and_values_csv_is_the_tables(tmp_path):
    """The saved PNG is matplotlib's own PNG of the figure, made opaque RGB, pixel for pixel (the
    intermediate PNG is written uncompressed for speed); the values CSV is ``table_text``'s CSV."""
    import io

    from PIL import Image

    def figure():
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.imshow(np.arange(64.0).reshape(8, 8))
        ax.set_title("t")
        return fig

    values = [{"row": "a", "x": 0, "value": 0.125}, {"row": "b", "x": 1, "value": 1 / 3}]
    report.save_figure(figure(), "f", out_dir=tmp_path, profile="mini", parameters={}, values=values)
    buf = io.BytesIO()
    figure().savefig(buf, format="png", dpi=150, bbox_inches="tight", facecolor="white")
    want = np.asarray(Image.open(buf).convert("RGB"))
    got = np.asarray(Image.open(tmp_path / "f.png"))
    assert got.shape == want.shape and np.array_equal(got, want)
    assert (tmp_path / "f.csv").read_text() == report.table_text(values)["csv"]
    plt.close("all")


def test_empty_cells_show_as_a_dash_with_a_note():
    rows = [{"model": "a", "gain": 1.5}, {"model": "b", "gain": float("nan")}]
    text = report.table_text(rows, notes=["— : b has no such combination."])
    assert "| b | — |" in text["md"] and text["md"].rstrip().endswith("*— : b has no such combination.*")
    assert "nan" in text["csv"] and "b & — \\\\" in text["tex"] and "no such combination" in text["tex"]
    generic = report.table_text(rows)
    assert "no value (NaN in the CSV) in column(s) gain" in generic["md"]
    assert "—" not in report.table_text(rows[:1])["md"]


def test_a_bar_in_a_header_or_a_cell_does_not_end_it():
    """"ρ of |maps|" as a column and "|ρ|" in a cell: escaped, so each Markdown row keeps its cells
    (unescaped, JupyterLab and nbconvert showed notebook 03's table as one line of text)."""
    import re

    md = report.table_text([{"method": "a|b", "ρ of |maps|": 0.5}])["md"].splitlines()
    assert md[0] == r"| method | ρ of \|maps\| |" and md[2] == r"| a\|b | 0.50 |"
    assert all(len(re.split(r"(?<!\\)\|", line)) == 2 + 2 for line in md)


def test_a_grid_row_can_mix_signed_layer_maps_and_a_normalised_combination():
    import matplotlib.pyplot as plt

    signed_map, combined = np.array([[-1.0, 2.0], [0.5, -0.3]]), np.array([[0.0, 1.0], [0.2, 0.4]])
    fig, _ = charts.grid(None, {"LA": [signed_map, combined]}, ["layer", "combination"],
                           images=[np.zeros((2, 2, 3))], signed={"LA": [True, False]})
    cmaps = [ax.images[-1].get_cmap().name for ax in fig.axes[:2]]
    assert cmaps[0] == plotting.colours(True)["cmap"] and cmaps[1] == plotting.colours(False)["cmap"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"signed\['LA'\]: 1 flags for 2 columns"):
        charts.grid(None, {"LA": [signed_map, combined]}, ["a", "b"], images=[np.zeros((2, 2, 3))],
                      signed={"LA": [True]})
