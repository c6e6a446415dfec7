"""Two photos side by side and the class selectivity measured on them (notebook 00's verdicts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reproduction as experiments
from revisal import data
from revisal.data.transforms import IMAGENET_NORMALIZE
from revisal.models.zoo import ZooModel


def test_side_by_side_puts_each_photo_on_its_half():
    image = data.side_by_side("chelsea", "coffee", size=64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    left = (data.to_pixels(data.photo("chelsea"), 64).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(image[:, :32], left[:, 16:48])  # the centre strip of chelsea's crop
    assert data.halves(8)[0, :, :4].all() and not data.halves(8)[0, :, 4:].any()
    assert data.photos(["chelsea_coffee"], size=32).pixels.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="shift: 40 moves the strip outside"):
        data.side_by_side("chelsea", "coffee", size=64, shift=(40, 0))


class Voter(nn.Module):
    """logit_c = w_c · Σ_u features_u: every class sees the same features, so NormGrad's map
    (‖g_u‖‖x_u‖ with g_u ∝ w_c) has the same shape for every class: it ignores the class."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(1, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [2.0], [-1.5]]))

    def forward(self, x):
        return self.head(self.features(x).sum(dim=(1, 2, 3))[:, None])


def test_a_class_blind_map_scores_one_half_on_average():
    """Over both classes of each two-photo image the shares of a class-blind map sum to 1, so their
    mean is exactly 0.5 (the metric's no-selectivity level)."""
    torch.manual_seed(0)
    zoo = ZooModel("voter", Voter().eval(), IMAGENET_NORMALIZE, ["a", "b", "c"], ("features.1",))
    out = experiments.side_by_side_selectivity(zoo, ["chelsea", "coffee", "rocket"], ["normgrad"], ["features.1"], size=32)
    share = out["normgrad", "features.1"]
    assert len(out["units"]) == len(share) == 2 * 3 * 2
    half = len(share) // 2
    np.testing.assert_allclose(share[:half] + share[half:], 1.0, atol=1e-9)
    assert share.mean() == pytest.approx(0.5, abs=1e-9)
    with pytest.raises(ValueError, match="at least two distinct photos"):
        experiments.side_by_side_selectivity(zoo, ["chelsea", "chelsea"], ["normgrad"], ["features.1"])


def test_your_own_image_file_is_a_one_photo_batch(tmp_path, recwarn):
    from PIL import Image

    Image.fromarray(data.photo("coffee")).save(tmp_path / "mine.png")
    batch = data.image_file(tmp_path / "mine.png", size=48)
    assert batch.names == ["mine"] and batch.pixels.shape == (1, 3, 48, 48)
    np.testing.assert_array_equal(batch.pixels[0], data.to_pixels(data.photo("coffee"), 48))
    assert not [w for w in recwarn if "not writable" in str(w.message)]
    with pytest.raises(ValueError, match="is not a file"):
        data.image_file(tmp_path / "missing.png")
