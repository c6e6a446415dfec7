"""The embedded real model and photos: offline, correct, and with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import revisal
from revisal import data, models
from revisal.data.labels import IMAGENET_CLASSES
from revisal.data.transforms import IMAGENET_NORMALIZE


@pytest.fixture(scope="module")
def lite0():
    return models.load("efficientnet_lite0")


def test_efficientnet_lite0_classifies_shipped_photos(lite0):
    batch = data.photos(["chelsea", "coffee"])
    with torch.no_grad():
        logits = lite0.model(lite0.normalize(batch.pixels))
    cats = {lite0.class_id(c) for c in ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")}
    assert cats & set(logits[0].topk(3).indices.tolist())
    assert int(logits[1].argmax()) == lite0.class_id("espresso") == 967


def test_efficientnet_weights_loaded_by_position(lite0):
    """Every tensor of the shipped checkpoint lands, in order, in timm's model."""
    shipped = models.zoo._efficientnet_lite0_state()
    ours = lite0.model.state_dict()
    assert len(shipped) == len(ours) == 296
    for (_, a), (_, b) in zip(shipped.items(), ours.items()):
        assert torch.equal(a, b)


def test_load_by_position_rejects_mismatch():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="expects"):
        models.load_by_position(net, {"a": torch.zeros(3, 3), "b": torch.zeros(3)})
    with pytest.raises(ValueError, match="1 tensors for a model with 2"):
        models.load_by_position(net, {"a": torch.zeros(3, 2)})


def test_presets_are_real_module_names(lite0):
    names = dict(lite0.model.named_modules())
    assert all(layer in names for layer in lite0.layers)
    import torchvision

    for arch in ("vgg16", "resnet50"):
        names = dict(getattr(torchvision.models, arch)().named_modules())
        assert all(layer == "" or layer in names for layer in models.PRESETS[arch].layers)


def test_every_zoo_model_takes_its_preset():
    """One preset per loadable model, and each model (built weightless on the meta device) has the
    preset's layers and preprocessing and runs at the preset's input size."""
    from reproduction import zoo as wing

    presets = {**models.PRESETS, **wing.PRESETS}
    assert set(presets) == set(models.LOADERS)
    for name, preset in presets.items():
        zoo = models.skeleton(name)
        names = dict(zoo.model.named_modules())
        assert zoo.layers == preset.layers and all(layer == "" or layer in names for layer in preset.layers), name
        assert zoo.normalize is preset.normalize and zoo.input_size == preset.input_size, name
        with torch.device("meta"):
            out = zoo.model(torch.empty(1, 3, preset.input_size, preset.input_size))
        # TorchRay's VOC/COCO models run fully convolutional: a class-score map, 1×1 at the preset size
        expected = (1, len(zoo.classes), 1, 1) if name.endswith(("_voc", "_coco")) else (1, len(zoo.classes))
        assert out.shape == expected, name


def test_imagenet_class_names_are_package_data():
    """The 1000 names ship as revisal/data/imagenet_classes.txt (declared package data), in
    torchvision's index order; revisal no longer reads torchvision's private list."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES  # test-only oracle

    assert isinstance(IMAGENET_CLASSES, tuple) and len(set(IMAGENET_CLASSES)) == len(IMAGENET_CLASSES) == 1000
    assert IMAGENET_CLASSES[0] == "tench" and IMAGENET_CLASSES[282] == "tiger cat"
    assert IMAGENET_CLASSES[967] == "espresso" and IMAGENET_CLASSES[999] == "toilet tissue"
    assert list(IMAGENET_CLASSES) == list(_IMAGENET_CATEGORIES)
    assert models.skeleton("vgg16").classes == list(IMAGENET_CLASSES)
    root = Path(revisal.__file__).parent
    assert "data/imagenet_classes.txt" in (root.parent / "pyproject.toml").read_text()
    assert not [p for p in root.rglob("*.py") if "_IMAGENET_CATEGORIES" in p.read_text()]


def test_unknown_names_raise(lite0):
    with pytest.raises(ValueError, match="did you mean"):
        models.load("efficientnet_lite")
    with pytest.raises(ValueError, match="tiger cat"):
        lite0.class_id("tiger-cat")
    with pytest.raises(ValueError, match="unknown photo"):
        data.photo("cat")
    with pytest.raises(ValueError, match="empty"):
        data.photos([])


def test_photos_are_ready_tensors():
    batch = data.photos(size=64)
    assert batch.names == list(data.PHOTOS)
    assert batch.pixels.shape == (len(data.PHOTOS), 3, 64, 64) and batch.pixels.dtype == torch.float32
    assert 0 <= float(batch.pixels.min()) and float(batch.pixels.max()) <= 1
    assert batch.numpy(0).shape == (64, 64, 3)


def test_to_pixels_resizes_shorter_side_and_centre_crops():
    """A wide image whose left and right thirds differ: the crop keeps only the middle third."""
    img = np.zeros((30, 90, 3), dtype=np.uint8)
    img[:, 30:60] = 255
    px = data.to_pixels(img, 30)
    assert px.shape == (3, 30, 30)
    assert float(px[:, :, 2:-2].min()) > 0.99
    with pytest.raises(ValueError, match="uint8"):
        data.to_pixels(img.astype(np.float32), 30)


def test_normalize_matches_formula():
    px = torch.rand(2, 3, 4, 4)
    n = IMAGENET_NORMALIZE
    want = (px - torch.tensor(n.mean)[:, None, None]) / torch.tensor(n.std)[:, None, None]
    torch.testing.assert_close(n(px), want)
