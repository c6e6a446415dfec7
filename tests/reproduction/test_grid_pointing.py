"""Grid pointing game: mosaics, the choice of photos, and the runner on a model whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import reproduction.grid_pointing as gp
from reproduction.grid_cells import grid_hits
from reproduction.mosaics import SOURCES, arrangements, classify_photos, mosaic, offline_photos
from revisal.data.photos import to_pixels
from revisal.models import ZooModel

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
           "dark_red": (128, 0, 0), "grey": (40, 40, 40)}


def _solid(rgb, shape=(20, 30)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (*shape, 3)).copy()


def _colour_zoo() -> ZooModel:
    """A 1×1 conv scoring each location's colour per class (red, green, blue, black), averaged over
    space: logit_k = mean_u (w_k · x_u) + b_k. Its maps of class k peak where the colour of k is."""
    conv = nn.Conv2d(3, 4, 1).double()
    with torch.no_grad():
        conv.weight.copy_(10 * torch.tensor([[1, -.5, -.5], [-.5, 1, -.5], [-.5, -.5, 1], [-1, -1, -1.]])[..., None, None])
        conv.bias.copy_(torch.tensor([0, 0, 0, 3.]))
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    return ZooModel("colours", model, normalize=lambda x: x, classes=["red", "green", "blue", "black"],
                    layers=("", "0"), input_size=16)


def test_arrangements_are_distinct_and_balanced():
    plan = arrangements(5, 120, seed=3)
    assert len(set(plan)) == 120 and all(len(set(p)) == 4 for p in plan)
    first = plan[:5]  # one round: each subset of 4 photos once, so each photo in 4 mosaics
    assert sorted(tuple(sorted(p)) for p in first) == list(itertools.combinations(range(5), 4))
    assert np.bincount(np.concatenate(first)).tolist() == [4] * 5
    assert arrangements(5, 7, seed=3) == plan[:7]
    with pytest.raises(ValueError, match="count"):
        arrangements(5, 121)
    with pytest.raises(ValueError, match="needs 4 photos"):
        arrangements(3, 1)


def test_mosaic_layout_row_major():
    images = [_solid(COLOURS[c]) for c in ("red", "green", "blue", "black")]
    m = mosaic(images, cell=8)
    assert m.shape == (3, 16, 16)
    for k, image in enumerate(images):
        r, c = divmod(k, 2)
        torch.testing.assert_close(m[:, 8 * r:8 * r + 8, 8 * c:8 * c + 8], to_pixels(image, 8), rtol=0, atol=0)


def test_classify_keeps_confident_photos_of_distinct_classes():
    zoo = _colour_zoo()
    photos = {name: _solid(rgb) for name, rgb in COLOURS.items()}
    result = {c.name: c for c in classify_photos(zoo, photos, min_confidence=0.5)}
    assert {n for n, c in result.items() if c.kept} == {"red", "green", "blue", "black"}
    assert result["dark_red"].class_name == "red" and "more confident photo" in result["dark_red"].reason
    assert result["grey"].probability < 0.5 and "< 0.5" in result["grey"].reason
    with pytest.raises(ValueError, match="min_confidence"):
        classify_photos(zoo, photos, min_confidence=1.5)


def test_offline_photos_are_real_rgb_photos():
    photos, missing = offline_photos()
    assert set(photos) | set(missing) == set(SOURCES)
    assert {"chelsea", "coffee", "rocket"} <= set(photos)  # scikit-image is a dependency
    for image in photos.values():
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.flags.writeable
        assert image.std(axis=(0, 1)).min() > 5  # not a flat or synthetic single-colour image


def test_runner_known_answer_and_cache(tmp_path, monkeypatch):
    """On the colour model every class-selective map (linear approximation at the input, Grad-CAM
    at the conv) peaks in its own cell: 100%; the input gradient is constant (a 1×1 conv and a
    mean): no maximum, so "n/a" (NaN, every trial flat). A second run reads every mosaic's maps from
    the cache."""
    zoo = _colour_zoo()
    photos = {name: _solid(COLOURS[name]) for name in ("red", "green", "blue", "black")}
    kept = classify_photos(zoo, photos, min_confidence=0.5)
    kwargs = dict(mosaics=6, seed=1, cell=8, cache_root=str(tmp_path), progress=False)
    res = gp.grid_pointing_game(zoo, photos, kept, ["linear_approx", "grad_cam", "gradient"], ["", "0"], **kwargs)
    assert len(res) == 24 and res.columns == ["", "0", "uniform sum", "linear sum", "linear product"]
    table = res.accuracy_table()
    assert table[0, 0] == 100 and table[1, 1] == 100 and table[0, 2:].tolist() == [100] * 3
    assert np.isnan(table[2, 0]) and res.flat_share()[2, 0] == 1 and not res.hits[2, 0].any()
    assert res.flat_share()[0, 0] == 0
    # every trial's target photo sits in its cell: the mosaic order, row-major
    assert [kept_names for kept_names in res.trial_photo[:4]] == list(res.mosaics[0])
    assert res.take(np.arange(4)).hits.shape == (3, 5, 4)

    def refuse(*args, **kw):
        raise AssertionError("saliency recomputed although every mosaic is cached")

    monkeypatch.setattr(gp, "saliency", refuse)
    again = gp.grid_pointing_game(zoo, photos, kept, ["linear_approx", "grad_cam", "gradient"], ["", "0"], **kwargs)
    np.testing.assert_array_equal(again.hits, res.hits)


def test_runner_refuses_duplicate_classes():
    zoo = _colour_zoo()
    photos = {name: _solid(COLOURS[name]) for name in ("red", "dark_red", "green", "blue", "black")}
    kept = [c.__class__(**{**c.__dict__, "kept": True}) for c in classify_photos(zoo, photos, min_confidence=0.5)]
    with pytest.raises(ValueError, match="distinct classes"):
        gp.grid_pointing_game(zoo, photos, kept, ["normgrad"], ["0"], mosaics=1, cache_root=None, progress=False)


def test_grid_parameters_are_checked():
    from reproduction import params

    def problems(name, value):
        return params.problems("02", {**params.declared("02"), name: value})

    for value in (0, 1, 1.5, "high"):
        assert any(p.startswith("grid_min_confidence") for p in problems("grid_min_confidence", value)), value
    assert problems("grid_min_confidence", 0.3) == []
    assert any("ImageNet model" in p for p in problems("grid_model", "mini_vgg"))
    assert [p[:12] for p in problems("grid_methods", ["normgrd"])] == ["grid_methods"]


def test_readme_note_counts_the_photos(tmp_path):
    import json

    from reproduction.readme import grid_section as grid

    with pytest.raises(ValueError, match=r"table_grid_pointing\.json: missing"):  # not a placeholder
        grid(tmp_path)
    (tmp_path / "table_grid_pointing.json").write_text(json.dumps(
        {"photos": ["chelsea", "coffee", "china", "rocket", "motorcycle"], "mosaics": [[0, 1, 2, 3]] * 10,
         "target_cells": 40}))
    note = grid(tmp_path)
    assert "**5 distinct photos**" in note and "10 2×2 mosaics (40 target cells)" in note and "small sample" in note


def _hit_cells(maps, grid=(2, 2), size=None) -> np.ndarray:
    """[N, cells]: for each map, the cells its target would have to be in for a hit."""
    n, cells = len(maps), grid[0] * grid[1]
    return np.stack([grid_hits(maps, np.full(n, c), grid=grid, size=size) for c in range(cells)], axis=1)


@pytest.mark.parametrize("side, size", [(7, 448), (3, 448), (5, 448), (9, 448), (7, 14), (3, 96), (4, None)])
def test_grid_peak_on_a_cell_boundary_hits_no_cell(side, size):
    """A single peak in the middle of an odd-sided map lies on the boundary of all four cells once
    resized to the mosaic: a tie between cells, a miss in every cell (it was a hit in all four, or
    in one picked by float rounding); so is a plateau across the boundary of an unresized map. A
    peak inside a cell, next to the boundary, hits that cell and no other."""
    resize = (size, size) if size else None
    m = np.zeros((1, 1, side, side))
    if side % 2:
        m[0, 0, side // 2, side // 2] = 1
    else:
        m[0, 0, side // 2 - 1:side // 2 + 1, side // 2 - 1:side // 2 + 1] = 1  # a 2×2 plateau across the cells
    assert _hit_cells(m, size=resize).tolist() == [[False] * 4]
    even = side + side % 2  # even sides: the cells split between pixels
    near = np.zeros((4, 1, even, even))
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        near[k, 0, even // 2 - 1 + r, even // 2 - 1 + c] = 1
    assert _hit_cells(near, size=resize).tolist() == np.eye(4, dtype=bool).tolist()


@pytest.mark.parametrize("grid", [(2, 2), (3, 3), (2, 3), (1, 4)])
def test_grid_a_map_hits_at_most_one_cell(grid):
    """Invariant: every location belongs to exactly one cell, so whatever the map — coarse values
    with many ties, plateaus, maps resized to odd and even sizes — at most one cell counts it a hit,
    and exactly one when its maximiser is unique."""
    g = torch.Generator().manual_seed(7)
    maps = torch.randint(0, 3, (64, 1, 6, 6), generator=g).double()  # three levels: ties everywhere
    for size in (None, (6, 6), (12, 12), (13, 9), (448, 448)):
        hit = _hit_cells(maps, grid, size)
        assert (hit.sum(1) <= 1).all()
    unique = torch.randn(64, 1, 6, 6, generator=g, dtype=torch.float64)
    assert (_hit_cells(unique, grid).sum(1) == 1).all()


@pytest.mark.parametrize("shape", [(1, 1, 0, 0), (2, 1, 0, 5), (1, 1, 5, 0), (3, 0, 4)])
def test_grid_and_pointing_refuse_empty_maps_as_they_refuse_nan(shape):
    """An empty map has no maximum: the same clear ValueError naming ``maps`` as a NaN or infinite
    map, from the grid game and the pointing game alike (not numpy's zero-size reduction error)."""
    from revisal.metrics.pointing import maxima, point

    n = shape[0]
    for bad in (np.zeros(shape), torch.zeros(shape)):
        with pytest.raises(ValueError, match=r"^maps: empty.*no maximum"):
            grid_hits(bad, np.zeros(n, dtype=int))
        with pytest.raises(ValueError, match=r"^maps: empty.*no maximum"):
            grid_hits(bad, np.zeros(n, dtype=int), size=(8, 8))
    with pytest.raises(ValueError, match=r"^maps: .*NaN or infinite.*no maximum"):
        grid_hits(np.full((1, 1, 2, 2), np.nan), [0])
    with pytest.raises(ValueError, match=r"^maps: .*NaN or infinite.*no maximum"):
        grid_hits(np.full((1, 1, 2, 2), np.inf), [0], size=(4, 4))
    if len(shape) == 4:
        with pytest.raises(ValueError, match=r"^saliency maps: empty"):
            maxima(torch.zeros(shape), "saliency maps")
        with pytest.raises(ValueError, match="saliency"):
            point(torch.zeros(shape[-2:]), size=(8, 8))
    assert grid_hits(np.zeros((0, 1, 4, 4)), []).tolist() == []  # an empty batch of maps is no error


def test_class_agnostic_marks_a_layer_whose_four_maps_are_one_map_and_nothing_else():
    """Known answer: per mosaic, four maps equal up to a positive scale and offset are class-agnostic;
    one map that differs, a negated map, or a flat map is not."""
    rng = np.random.default_rng(0)
    base = rng.random((2, 1, 6, 6))  # two mosaics
    same = np.concatenate([np.concatenate([b * s + o for s, o in ((1, 0), (2, 0), (0.5, 1), (3, -1))]) for b in base])
    other = same.copy()
    other[5] = rng.random((6, 6))  # the second mosaic's second cell: another map
    negated = same.copy()
    negated[2] = -negated[2]
    flat = np.ones_like(same)
    maps = {("m", "a"): same, ("m", "b"): other, ("m", "c"): negated, ("m", "d"): flat}
    res = gp.GridResults(["m"], ["a", "b", "c", "d", "e"], [], np.zeros((1, 5, 8), dtype=bool), [], [(0, 1, 2, 3)] * 2,
                         np.arange(8) % 4, np.arange(8) % 4, maps)
    assert res.class_agnostic().tolist() == [[True, False, False, False, False]]  # "e": no maps kept
