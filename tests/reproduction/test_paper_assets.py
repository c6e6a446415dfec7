"""Paper-profile loaders exercised on small fakes written in the exact on-disk formats.

TorchRay (test-only oracle) must agree with revisal on checkpoints, masks and preprocessing.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from conftest import oracle
from reproduction import caffe_models as caffe
from reproduction.datasets import coco as coco_data
from reproduction.datasets import imagenet, pascal, pointing
from reproduction.datasets.labels import COCO_CATEGORY_IDS, VOC_CLASSES
from reproduction.sources import ShorterSide
from revisal.data.transforms import CAFFE_NORMALIZE
from revisal.models import load as load_model


# --- TorchRay-format checkpoints -------------------------------------------------------------------
def torchray_layout(arch: str, classes: int) -> dict[str, torch.Tensor]:
    """A random checkpoint in the key layout of TorchRay's converted Caffe models."""
    torch.manual_seed(0)
    if arch == "vgg16":
        state = torchvision.models.vgg16(num_classes=classes).state_dict()
        slots = {"classifier.3": "classifier.2", "classifier.6": "classifier.4"}
        return {slots.get(k.rpartition(".")[0], k.rpartition(".")[0]) + "." + k.rpartition(".")[2]: v for k, v in state.items()}
    model = torchvision.models.resnet50(num_classes=classes)
    out = {"conv1.bias": torch.randn(64) * 0.1}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # Caffe: statistics in "<bn>.0", affine in "<bn>.1"
            out[f"{name}.0.running_mean"] = torch.randn(module.num_features) * 0.1
            out[f"{name}.0.running_var"] = torch.rand(module.num_features) + 0.5
            out[f"{name}.1.weight"] = torch.rand(module.num_features) + 0.5
            out[f"{name}.1.bias"] = torch.randn(module.num_features) * 0.1
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            for p, value in module.named_parameters(recurse=False):
                out[f"{name}.{p}"] = value.detach().clone()
    return out


@pytest.mark.parametrize("arch", ["vgg16", "resnet50"])
def test_caffe_checkpoint_matches_torchray_builder(tmp_path, monkeypatch, arch):
    tr_models = oracle("torchray.benchmark.models")
    state = torchray_layout(arch, 20)
    path = tmp_path / f"{arch}_voc-00000000.pth.tar"
    torch.save(state, path)
    ours = caffe.load_caffe_model(arch, "voc", path, verify=False, fully_convolutional=False)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, *a, **k: {k2: v.clone() for k2, v in state.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tr_models.get_model(arch=arch, dataset="voc")
    # float64: the two builds compute VGG16's head differently (Linear vs 7×7 conv), whose float32
    # rounding differs by CPU; in float64 they agree to ~1e-15. One image: a float64 VGG16 at 224 px
    # (the smallest input TorchRay's fully-convolutional head accepts) costs seconds per image.
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours.double()(x), theirs.double()(x)
    assert a.shape == (1, 20) and a.dtype == torch.float64
    torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-10, atol=1e-10 * float(b.abs().max()))


def test_missing_or_corrupt_checkpoint_errors(tmp_path):
    missing = tmp_path / "resnet50_voc-9ca920d6.pth.tar"
    with pytest.raises(FileNotFoundError, match="make data-models"):
        caffe.verify_checkpoint(missing)
    missing.write_bytes(b"not the checkpoint")
    with pytest.raises(RuntimeError, match="sha256"):
        caffe.verify_checkpoint(missing)
    with pytest.raises(FileNotFoundError, match="make data-models"):
        load_model("vgg16_coco", path=tmp_path / "vgg16_coco-d82c8150.pth.tar")


def test_torchvision_imagenet_models_build_without_download():
    zoo = load_model("resnet50", pretrained=False)
    assert zoo.classes[282] == "tiger cat" and zoo.layers == ("", "layer1", "layer2", "layer3", "layer4")


# --- PASCAL VOC ------------------------------------------------------------------------------------
def write_voc(root: Path, images: dict[str, list[tuple[str, tuple[int, int, int, int], int]]], size=(40, 30)):
    """A VOCdevkit/VOC2007 tree: JPEGs, XML annotations, ImageSets/Main/test.txt."""
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    w, h = size
    for name, objects in images.items():
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(base / "JPEGImages" / f"{name}.jpg")
        objs = "".join(
            f"<object><name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{diff}</difficult>"
            f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for cls, (x0, y0, x1, y1), diff in objects
        )
        (base / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{name}.jpg</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>"
        )
    (base / "ImageSets" / "Main" / "test.txt").write_text("\n".join(images) + "\n")


VOC_FAKE = {
    "000001": [("dog", (2, 3, 10, 12), 0), ("dog", (20, 5, 25, 9), 0), ("person", (1, 1, 40, 30), 0)],
    "000002": [("cat", (5, 5, 8, 8), 1)],  # only PASCAL-difficult boxes: the pair is not scored
    "000003": [("cat", (5, 5, 8, 8), 1), ("cat", (30, 20, 35, 28), 0), ("car", (1, 1, 6, 6), 0)],
}


def test_voc_pairs_masks_and_flags(tmp_path):
    write_voc(tmp_path, VOC_FAKE)
    dataset = pascal.voc07(tmp_path)
    assert len(dataset) == 3
    pairs = list(pascal.pointing_pairs(dataset))
    got = {(p.name, VOC_CLASSES[p.class_id]) for p in pairs}
    assert got == {("000001", "dog"), ("000001", "person"), ("000003", "cat"), ("000003", "car")}
    dog = next(p for p in pairs if VOC_CLASSES[p.class_id] == "dog")
    want = np.zeros((30, 40), bool)
    want[2:12, 1:10] = True  # 1-based inclusive boxes → 0-based slices
    want[4:9, 19:25] = True
    assert np.array_equal(dog.mask, want) and dog.difficult  # small, another class present
    person = next(p for p in pairs if VOC_CLASSES[p.class_id] == "person")
    assert person.mask.all() and not person.difficult

    tr = oracle("torchray.benchmark.datasets")
    for p in pairs:  # TorchRay's mask for the same pair (it keeps PASCAL-difficult boxes in the mask)
        _, label = dataset[p.index]
        assert np.array_equal(tr.voc_as_mask(label, p.class_id).numpy(), p.mask)

    flags = tmp_path / "flags.txt"
    flags.write_text("000001\t" + "\t".join("1" if c == "dog" else "0" for c in VOC_CLASSES) + "\n"
                     "000003\t" + "\t".join("0" for _ in VOC_CLASSES) + "\n")
    agreement = pointing.flag_agreement(pairs, pointing.read_flag_file(flags))
    # cat and car in 000003 are small with another class present: difficult by the rule, 0 in the file
    assert agreement == {"pairs": 4, "agree": 2, "agreement": 0.5, "ours_only": 2, "reference_only": 0}


def test_voc_missing_split_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data-voc"):
        pascal.voc07(tmp_path)


# --- COCO ------------------------------------------------------------------------------------------
def test_coco_pairs_and_masks(tmp_path):
    (tmp_path / "val2014").mkdir()
    (tmp_path / "annotations").mkdir()
    images = [{"id": 7, "file_name": "COCO_val2014_000000000007.jpg", "height": 30, "width": 40},
              {"id": 9, "file_name": "COCO_val2014_000000000009.jpg", "height": 30, "width": 40}]
    for im in images:
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "val2014" / im["file_name"])
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]
    big = [[0, 0, 40, 0, 40, 30, 0, 30]]
    anns = [
        {"id": 1, "image_id": 7, "category_id": 18, "segmentation": square, "area": 100, "bbox": [2, 2, 10, 10], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 1, "segmentation": [[20, 5, 30, 5, 30, 15, 20, 15]], "area": 100,
         "bbox": [20, 5, 10, 10], "iscrowd": 0},
        {"id": 3, "image_id": 9, "category_id": 90, "segmentation": big, "area": 1200, "bbox": [0, 0, 40, 30], "iscrowd": 0},
    ]
    cats = [{"id": c, "name": f"c{c}", "supercategory": "x"} for c in COCO_CATEGORY_IDS]
    (tmp_path / "annotations" / "instances_val2014.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dataset = coco_data.coco14(tmp_path)
    pairs = list(coco_data.pointing_pairs(dataset))
    assert [(p.name, p.class_id) for p in pairs] == [
        ("COCO_val2014_000000000007", 0), ("COCO_val2014_000000000007", COCO_CATEGORY_IDS.index(18)),
        ("COCO_val2014_000000000009", 79)]
    assert [p.difficult for p in pairs] == [True, True, False]
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects(square, 30, 40))
    assert np.array_equal(pairs[1].mask, mask_utils.decode(rle).astype(bool))
    tr = oracle("torchray.benchmark.datasets")
    for p in pairs:
        _, label = dataset[p.index]
        assert np.array_equal(tr.coco_as_mask(dataset, label, p.class_id).numpy(), p.mask)


# --- ImageNet --------------------------------------------------------------------------------------
def test_imagenet_folder(tmp_path):
    for wnid in ("n01440764", "n01443537", "n01484850"):
        (tmp_path / wnid).mkdir()
        for k in range(2):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / wnid / f"ILSVRC2012_val_{wnid}_{k}.JPEG")
    full = imagenet.imagenet_val(tmp_path)
    assert len(full) == 6 and full.classes[0] == "n01440764"
    one = imagenet.imagenet_val(tmp_path, per_class=1)
    assert [one[i][1] for i in range(len(one))] == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="image-net.org"):
        imagenet.imagenet_val(tmp_path / "nope")


def test_imagenet_images_follow_the_authors_transform_and_spread_over_classes(tmp_path):
    """Notebooks 01, 03, 04 and 05 read ImageNet val as the authors' scripts do: TorchRay's
    ``get_transform('imagenet', size=(224, 224))`` (the whole image squashed to 224², no crop), bit
    for bit on non-square noise JPEGs; and one image per class for ``n`` classes spread over the
    class list, not its first ``n``."""
    from types import SimpleNamespace

    from reproduction import profiles as resolve
    from reproduction.datasets.imagenet import torchray_imagenet
    from revisal.data.transforms import IMAGENET_NORMALIZE

    rng = np.random.default_rng(0)
    wnids = [f"n{k:08d}" for k in range(10)]
    for wnid, (h, w) in zip(wnids, [(300, 500), (500, 333), (224, 224), (97, 401), (640, 480)] * 2):
        (tmp_path / wnid).mkdir()
        for k in range(2):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / wnid / f"img_{k}.JPEG")
    theirs = oracle("torchray.benchmark.models").get_transform("imagenet", size=(224, 224))
    ours = torchray_imagenet(224, IMAGENET_NORMALIZE)
    for wnid in wnids[:5]:
        with Image.open(tmp_path / wnid / "img_0.JPEG") as im:
            want = theirs(im.convert("RGB"))
            got = ours(im.convert("RGB"))
        assert got.shape == (3, 224, 224) and torch.equal(got, want)
    zoo = SimpleNamespace(normalize=IMAGENET_NORMALIZE)
    x, y = resolve.image_set(zoo, {"imagenet_root": str(tmp_path), "input_size": 224}, 4, dataset="imagenet")
    assert y.tolist() == [0, 2, 5, 7]  # ⌊k·10/4⌋: spread over the ten classes
    with Image.open(tmp_path / wnids[5] / "img_0.JPEG") as im:
        assert torch.equal(x[2], theirs(im.convert("RGB")))  # the first image of class 5
    assert resolve.spread(3, 5) == [0, 1, 2] and resolve.spread(1000, 50)[:3] == [0, 20, 40]
    with pytest.raises(ValueError, match="size"):
        torchray_imagenet(0)


# --- preprocessing ---------------------------------------------------------------------------------
def test_caffe_preprocessing_matches_torchray():
    tr = oracle("torchray.benchmark.models")
    from torchvision.transforms import Compose, ToTensor

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8))
    ours = Compose([ToTensor(), ShorterSide(224), CAFFE_NORMALIZE])(image)
    theirs = tr.get_transform("voc", 224)(image)
    assert ours.shape == (3, 224, 336)
    # A short elementwise chain (a 4-tap bilinear resize, −mean, ×255) on values ≤ 255: in any order
    # of these operations and on any CPU, within a few float32 steps at 255 (1.5e-5 each) of each other.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-3)


def test_shorter_side_keeps_aspect():
    assert ShorterSide(10)(torch.zeros(3, 20, 40)).shape == (3, 10, 20)
    assert ShorterSide(10)(torch.zeros(3, 40, 20)).shape == (3, 20, 10)
    with pytest.raises(ValueError, match="size"):
        ShorterSide(0)
