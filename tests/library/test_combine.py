"""Layer combination (revisal.combine) against its formulas computed the slow way in float64:
a per-pixel bilinear resize (align_corners=False), min-max over the whole map with no epsilon,
weights normalised to sum 1, Σ w·m and Π m^w; and the constant-map rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import revisal
from revisal.combine import combine, constant_maps, normalize_maps


def bilinear_slow(m: np.ndarray, height: int, width: int) -> np.ndarray:
    """PyTorch's bilinear resize with ``align_corners=False`` one pixel at a time: the source
    coordinate of output pixel d is ``(d + 0.5)·in/out − 0.5``, clamped at 0."""
    h, w = m.shape
    out = np.empty((height, width))
    for y in range(height):
        sy = max((y + 0.5) * h / height - 0.5, 0.0)
        y0 = min(int(math.floor(sy)), h - 1)
        y1, ly = min(y0 + 1, h - 1), sy - y0
        for x in range(width):
            sx = max((x + 0.5) * w / width - 0.5, 0.0)
            x0 = min(int(math.floor(sx)), w - 1)
            x1, lx = min(x0 + 1, w - 1), sx - x0
            out[y, x] = ((1 - ly) * ((1 - lx) * m[y0, x0] + lx * m[y0, x1])
                         + ly * ((1 - lx) * m[y1, x0] + lx * m[y1, x1]))
    return out


def combine_slow(per_layer: list[np.ndarray], weights: list[float], mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image: resize, (m − min)/(max − min), w/Σw, then Σ w·m or Π m^w, pixel by pixel."""
    w = [float(g) / sum(weights) for g in weights]
    maps = []
    for m in per_layer:
        r = bilinear_slow(m, *size) if m.shape != size else m.astype(np.float64)
        lo, hi = min(r.ravel()), max(r.ravel())
        maps.append((r - lo) / (hi - lo))
    out = np.zeros(size) if mode == "sum" else np.ones(size)
    for y in range(size[0]):
        for x in range(size[1]):
            for g, m in zip(w, maps):
                if mode == "sum":
                    out[y, x] += g * m[y, x]
                else:
                    out[y, x] *= m[y, x] ** g
    return out


@pytest.mark.parametrize("mode", ["sum", "product"])
def test_combine_matches_the_slow_formula_on_non_square_maps(mode):
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 5), (6, 4), (11, 9)]
    per_layer = [torch.randn(2, 1, *s, generator=g, dtype=torch.float64) for s in shapes]
    weights = [0.5, 2.0, 1.5]
    size = (11, 9)
    got = combine(per_layer, weights, mode, size=size)
    assert got.dtype == torch.float64 and got.shape == (2, 1, 11, 9)
    for n in range(2):
        want = combine_slow([m[n, 0].numpy() for m in per_layer], weights, mode, size)
        np.testing.assert_allclose(got[n, 0].numpy(), want, rtol=1e-12, atol=1e-14)


def test_combine_upsamples_to_a_size_larger_than_every_map():
    """The pointing game resizes every map to the image (here 13×7, larger than every layer)."""
    g = torch.Generator().manual_seed(1)
    per_layer = [torch.rand(1, 1, 4, 2, generator=g, dtype=torch.float64), torch.rand(1, 1, 2, 3, generator=g,
                                                                                       dtype=torch.float64)]
    got = combine(per_layer, [3, 1], "product", size=(13, 7))
    want = combine_slow([m[0, 0].numpy() for m in per_layer], [3, 1], "product", (13, 7))
    np.testing.assert_allclose(got[0, 0].numpy(), want, rtol=1e-12, atol=1e-14)


def test_normalize_uses_no_epsilon():
    """A range of 1e-9 still normalises to exactly [0, 1] (an ε of 1e-8 would give a top of 0.09)."""
    m = torch.tensor([0.0, 0.5e-9, 1e-9], dtype=torch.float64).view(1, 1, 1, 3)
    assert normalize_maps(m).flatten().tolist() == [0.0, 0.5, 1.0]


def test_normalize_sets_a_constant_map_to_the_given_value():
    m = torch.cat([torch.full((1, 1, 2, 3), 4.0), torch.tensor([[[[1.0, 2, 3], [4, 5, 6]]]])]).double()
    out = normalize_maps(m)
    assert out[0].eq(0).all() and out[1].flatten().tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-15)
    assert torch.isnan(normalize_maps(m, float("nan"))[0]).all()
    with pytest.raises(ValueError, match="^constant: "):
        normalize_maps(m, "zero")


def _with_a_constant_map():
    """Two images, three layers; layer 1 of image 0 is constant."""
    g = torch.Generator().manual_seed(2)
    per_layer = [torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64) for _ in range(3)]
    per_layer[1][0] = 0.37
    return per_layer


@pytest.mark.parametrize("mode", ["sum", "product"])
def test_a_constant_map_is_left_out_and_the_other_weights_renormalised(mode):
    per_layer, weights = _with_a_constant_map(), [1.0, 2.0, 3.0]
    got = combine(per_layer, weights, mode)
    assert torch.isfinite(got).all()
    kept = [per_layer[0][0, 0].numpy(), per_layer[2][0, 0].numpy()]
    np.testing.assert_allclose(got[0, 0].numpy(), combine_slow(kept, [1.0, 3.0], mode, (5, 6)), rtol=1e-12, atol=1e-14)
    full = [m[1, 0].numpy() for m in per_layer]  # the other image keeps every layer
    np.testing.assert_allclose(got[1, 0].numpy(), combine_slow(full, weights, mode, (5, 6)), rtol=1e-12, atol=1e-14)
    assert constant_maps(per_layer).tolist() == [[False, True, False], [False, False, False]]


def test_constant_nan_gives_the_authors_nan_for_that_image_only():
    got = combine(_with_a_constant_map(), [1, 2, 3], "sum", constant="nan")
    assert torch.isnan(got[0]).all() and torch.isfinite(got[1]).all()
    assert torch.isnan(combine(_with_a_constant_map(), [1, 2, 3], "product", constant="nan")[0]).all()


def test_constant_raise_names_the_layer_and_the_images():
    with pytest.raises(ValueError, match=r"^per_layer\[1\]: the maps of images \[0\] are constant"):
        combine(_with_a_constant_map(), [1, 2, 3], constant="raise")
    with pytest.raises(ValueError, match="^constant: "):
        combine(_with_a_constant_map(), [1, 2, 3], constant="zero")


def test_an_image_whose_every_map_is_constant_gets_a_constant_map():
    per_layer = [torch.full((1, 1, 3, 3), 2.0), torch.zeros(1, 1, 6, 6)]
    assert combine(per_layer, [1, 1], "sum").eq(0).all()
    assert combine(per_layer, [1, 1], "product").eq(1).all()


def test_a_constant_map_stays_constant_through_resizing_noise():
    """Resizing a constant map may leave 1-ulp ripples; they must not be stretched to [0, 1]."""
    value = 0.1 + 1e-17
    per_layer = [torch.full((1, 1, 3, 7), value, dtype=torch.float32), torch.rand(1, 1, 10, 11)]
    assert constant_maps(per_layer, size=(23, 17)).tolist() == [[True, False]]
    got = combine(per_layer, [5, 1], "sum", size=(23, 17))
    only = combine([per_layer[1]], [1], "sum", size=(23, 17))
    torch.testing.assert_close(got, only, rtol=0, atol=0)


def test_combine_does_not_depend_on_the_batch():
    g = torch.Generator().manual_seed(3)
    per_layer = [torch.randn(4, 1, 7, 5, generator=g), torch.randn(4, 1, 3, 2, generator=g)]
    whole = combine(per_layer, [2, 1], "product", size=(9, 8))
    one_by_one = torch.cat([combine([m[n:n + 1] for m in per_layer], [2, 1], "product", size=(9, 8)) for n in range(4)])
    torch.testing.assert_close(whole, one_by_one, rtol=0, atol=0)


@pytest.mark.parametrize("constant", ["omit", "nan"])
def test_combine_many_equals_combine_for_each_weighting_bit_for_bit(constant):
    """The pointing game normalises a method's maps once for all its weightings: each result must
    be exactly ``combine``'s, float32 maps (as the pointing game's) and a constant map included."""
    from revisal.combine import combine_many

    per_layer = [m.float() for m in _with_a_constant_map()]
    weightings = [([1.0, 2.0, 3.0], "sum"), ([0.2, 0.0, 0.7], "product"), (torch.tensor([3.0, 1.0, 1.0]), "product"),
                  (np.array([1, 1, 1]), "sum")]
    got = combine_many(per_layer, weightings, size=(9, 7), constant=constant)
    assert len(got) == len(weightings)
    for out, (w, mode) in zip(got, weightings):
        want = combine(per_layer, w, mode, size=(9, 7), constant=constant)
        assert out.dtype == want.dtype == torch.float32
        assert torch.equal(torch.nan_to_num(out, nan=-1.0), torch.nan_to_num(want, nan=-1.0))
    with pytest.raises(ValueError, match="^mode: "):
        combine_many(per_layer, [([1, 1, 1], "sum"), ([1, 1, 1], "mean")])
    with pytest.raises(ValueError, match="^weights: "):
        combine_many(per_layer, [([1, 1], "sum")])
    assert combine_many(per_layer, []) == []


def test_a_map_constant_up_to_float32_rounding_is_flat_and_left_out():
    """Gradient-sum before a global pool is constant by construction; float32 leaves it a spread of
    rounding (2.2e-5 of its value at EfficientNet-Lite0's last layer). Min-max normalising it would
    stretch that noise to [0, 1]; it is flat, and combine leaves it out as an exactly constant map."""
    torch.manual_seed(0)
    noisy = 3.0 + 3.0 * 2e-5 * torch.rand(2, 1, 4, 4, dtype=torch.float64)
    structured = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    assert revisal.flat_maps(noisy).tolist() == [True, True] and not revisal.flat_maps(structured).any()
    assert revisal.flat_maps(torch.zeros(1, 1, 3, 3)).tolist() == [True]
    assert revisal.flat_maps(noisy, rtol=0.0).tolist() == [False, False]  # exact constancy only
    assert revisal.flat_maps(3.0 + 0.01 * structured).tolist() == [False, False]
    got = combine([noisy, structured], [0.5, 0.5])
    torch.testing.assert_close(got, combine([structured], [1.0]), rtol=0, atol=0)
    assert constant_maps([noisy, structured]).tolist() == [[True, False], [True, False]]


@pytest.mark.parametrize("rtol", [-0.1, 1.0, float("nan"), "0"])
def test_flat_maps_names_a_bad_tolerance(rtol):
    with pytest.raises(ValueError, match="rtol: expected a number in"):
        revisal.flat_maps(torch.ones(1, 1, 2, 2), rtol=rtol)
