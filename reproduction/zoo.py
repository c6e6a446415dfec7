"""The reproduction's models in :mod:`revisal.models`' zoo (entry-point group ``revisal.models``,
declared in ``pyproject.toml``): the mini models trained on the testbed and TorchRay's VOC07/COCO14
pointing-game checkpoints, each with its preset (preprocessing, input size, the layers the figures
walk through)."""

from __future__ import annotations

from pathlib import Path

import torch

from reproduction.datasets.labels import COCO_CLASSES, VOC_CLASSES
from reproduction.testbed import TESTBED_NORMALIZE
from revisal.data.transforms import CAFFE_NORMALIZE
from revisal.files import digest_file
from revisal.models import Preset, ZooModel
from revisal.models.presets import RESNET50_LAYERS, VGG16_LAYERS
from revisal.models.zoo import zoo_model

PRESETS: dict[str, Preset] = {
    # TorchRay's pointing-game models keep torchvision's module names and take Caffe-normalised input
    "vgg16_voc": Preset(CAFFE_NORMALIZE, VGG16_LAYERS, contrast_layer="classifier.4"),
    "vgg16_coco": Preset(CAFFE_NORMALIZE, VGG16_LAYERS, contrast_layer="classifier.4"),
    "resnet50_voc": Preset(CAFFE_NORMALIZE, RESNET50_LAYERS, contrast_layer="avgpool"),
    "resnet50_coco": Preset(CAFFE_NORMALIZE, RESNET50_LAYERS, contrast_layer="avgpool"),
    # the mini models at 64² input: 64², 32², 16², 8², 8² (no downsampling into the last stage)
    "mini_vgg": Preset(TESTBED_NORMALIZE, ("", "features.3", "features.8", "features.13", "features.17"), 64),
    "mini_resnet": Preset(TESTBED_NORMALIZE, ("", "layer1", "layer2", "layer3", "layer4"), 64),
}


def _caffe(arch: str, dataset: str, path: str | Path | None = None, verify: bool = True,
           pretrained: bool = True, fully_convolutional: bool = True) -> ZooModel:
    """TorchRay's VOC07 / COCO14 fine-tuned VGG16 / ResNet50 (Caffe conventions, see ``caffe.py``),
    fully convolutional as TorchRay's pointing game runs them (``fully_conv.py``) unless
    ``fully_convolutional=False``."""
    from reproduction.caffe_models import load_caffe_model

    model = load_caffe_model(arch, dataset, path, verify, pretrained, fully_convolutional)
    return zoo_model(f"{arch}_{dataset}", model, VOC_CLASSES if dataset == "voc" else COCO_CLASSES,
                     notes="TorchRay pointing-game checkpoint (converted from Caffe)", preset=PRESETS[f"{arch}_{dataset}"])


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def load_verified_checkpoint(path: Path, *, shipped: bool, retrain: str) -> dict:
    """``torch.load`` a training checkpoint after checking its sha256 against the JSON beside it:
    ``<stem>.json`` for shipped weights (``reproduction/weights/``), else the training run's
    ``manifest.json`` (one sha256 per epoch file). ``retrain`` names the command for the error."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path} does not exist; train it with {retrain}")
    manifest = path.with_suffix(".json") if shipped else path.parent / "manifest.json"
    if manifest.is_file():
        import json

        info = json.loads(manifest.read_text())
        known = {e["file"]: e["sha256"] for e in info.get("epochs", [])}
        known.setdefault(path.name, info.get("sha256"))
        if known.get(path.name) and digest_file(path) != known[path.name]:
            raise RuntimeError(f"checkpoint: {path} does not match the sha256 in {manifest}; retrain with {retrain}")
    return torch.load(path, map_location="cpu", weights_only=True)


def _mini(name: str, checkpoint: str | Path | None = None, pretrained: bool = True) -> ZooModel:
    """A mini model trained on the testbed: the committed final weights, or any ``checkpoint``
    written by ``python -m reproduction.train`` (verified against its manifest's sha256);
    ``pretrained=False``: untrained, nothing read."""
    from reproduction.mini_models import build
    from reproduction.render import CLASSES

    path = WEIGHTS_DIR / f"{name}.pt" if checkpoint is None else Path(checkpoint)
    model = build(name, len(CLASSES))
    if pretrained:
        saved = load_verified_checkpoint(path, shipped=checkpoint is None, retrain="`make models`")
        model.load_state_dict(saved["state_dict"])
    return zoo_model(name, model, CLASSES, notes=f"trained on the testbed; {path.name}" if pretrained else "untrained",
                     preset=PRESETS[name])


def mini_vgg(**kwargs) -> ZooModel:
    return _mini("mini_vgg", **kwargs)


def mini_resnet(**kwargs) -> ZooModel:
    return _mini("mini_resnet", **kwargs)


def vgg16_voc(**kwargs) -> ZooModel:
    return _caffe("vgg16", "voc", **kwargs)


def vgg16_coco(**kwargs) -> ZooModel:
    return _caffe("vgg16", "coco", **kwargs)


def resnet50_voc(**kwargs) -> ZooModel:
    return _caffe("resnet50", "voc", **kwargs)


def resnet50_coco(**kwargs) -> ZooModel:
    return _caffe("resnet50", "coco", **kwargs)
