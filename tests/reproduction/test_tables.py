"""Tables 4 and 5 compare layers of different networks by relative depth k/L."""

from __future__ import annotations

import numpy as np
import pytest
import torchvision
from torch import nn

from reproduction import paper, tables


def _tiny_vgg_features() -> nn.Sequential:
    """8 convs at mini_vgg's indices: 0, 2, 5, 7, 10, 12, 15, 17."""
    layers, channels = [], 3
    for _ in range(4):
        for _ in range(2):
            layers += [nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU()]
            channels = 4
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers[:-1])


def test_relative_depth_counts_the_convolutions_that_have_run():
    vgg = torchvision.models.vgg16()
    assert tables.relative_depth(vgg, "") == (0, 13)
    assert tables.relative_depth(vgg, "features.2") == (2, 13) and tables.relative_depth(vgg, "features.3") == (2, 13)
    assert tables.relative_depth(vgg, "features.28") == (13, 13) and tables.relative_depth(vgg, "features") == (13, 13)
    resnet = torchvision.models.resnet50()
    assert tables.relative_depth(resnet, "layer4") == (53, 53)  # a block: every conv inside it has run
    assert tables.relative_depth(resnet, "layer1.0.conv1") == (2, 53)
    with pytest.raises(ValueError, match="no module 'layer9'"):
        tables.relative_depth(resnet, "layer9")


def test_table4_pairs_by_depth_and_shows_every_paper_row():
    """mini_vgg's four layers sit beside VGG16's rows nearest in depth; VGG16's features.2 (2/13),
    nearer the input than any of ours, stands alone instead of being dropped."""
    model = nn.Sequential()
    model.features = _tiny_vgg_features()
    layers = ["features.2", "features.7", "features.12", "features.17"]
    rows = tables.table4({"mini_vgg": {layer: np.full(4, 0.9) for layer in layers}}, {"mini_vgg": model})
    assert [r["paper layer"] for r in rows] == [f"vgg16 {n}" for n in ("features.2", "features.7", "features.14",
                                                                      "features.21", "features.28")]
    assert [r["layer"] for r in rows] == ["—", *layers]
    assert [r["depth k/L"] for r in rows] == ["—", "2/8", "4/8", "6/8", "8/8"]
    assert rows[0]["model"] == "vgg16 (paper only)" and [r["model"] for r in rows[1:]] == ["mini_vgg"] * 4
    assert rows[0]["correlation %"] == "—" and rows[0]["paper %"] == paper.TABLE4["vgg16", "features.2"][0]
    assert rows[1]["correlation %"] == pytest.approx(90.0)


def test_table4_pairs_resnet_stages_by_name():
    resnet = torchvision.models.resnet18()
    layers = ["layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"]
    rows = tables.table4({"mini_resnet": {layer: np.ones(3) for layer in layers}}, {"mini_resnet": resnet})
    assert [(r["layer"], r["paper layer"]) for r in rows] == [(layer, f"resnet50 {layer}") for layer in layers]
    assert rows[-1]["paper depth"] == "44/53"
