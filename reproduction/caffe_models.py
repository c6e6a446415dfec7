"""The pointing-game models of the paper: VGG16 / ResNet50 fine-tuned on VOC07 and COCO14.

They are Caffe models (Zhang et al., Excitation Backprop) converted to PyTorch and published with
TorchRay. Loading them into torchvision's architectures needs the Caffe conventions:

* VGG16: every max-pool rounds up (``ceil_mode=True``); the first conv expects BGR input (its input
  channels are reversed here so the model takes RGB); the classifier is stored as
  ``classifier.{0,2,4}`` (no dropout slots) and may be saved in conv shape.
* ResNet50: ``conv1`` has a bias; the stem max-pool has no padding and rounds up; the stride-2 of
  each stage's first block sits on its 1×1 ``conv1`` rather than on the 3×3 ``conv2``; each Caffe
  BatchNorm is two modules (statistics ``bnK.0``, affine ``bnK.1``), likewise in ``downsample.1``.
* Input: RGB pixels in 0..255 minus the per-channel mean (:data:`revisal.data.transforms.CAFFE_NORMALIZE`).

Checkpoints are not downloaded by this module: a missing file raises an error with the exact
command, and a present file is verified against the sha256 prefix in its published name.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from reproduction.storage import project_path
from revisal.files import digest_file

BASE_URL = "https://dl.fbaipublicfiles.com/torchray/"
#: (arch, dataset) → published file name; the suffix is the sha256 prefix of the file.
CHECKPOINTS = {
    ("vgg16", "voc"): "vgg16_voc-b050e8c3.pth.tar",
    ("vgg16", "coco"): "vgg16_coco-d82c8150.pth.tar",
    ("resnet50", "voc"): "resnet50_voc-9ca920d6.pth.tar",
    ("resnet50", "coco"): "resnet50_coco-e99468c5.pth.tar",
}
NUM_CLASSES = {"voc": 20, "coco": 80}
CHECKPOINT_DIR = "data/checkpoints/torchray"


def checkpoint_path(arch: str, dataset: str, folder: str | Path = CHECKPOINT_DIR) -> Path:
    key = (arch, dataset)
    if key not in CHECKPOINTS:
        raise ValueError(f"arch, dataset: expected one of {sorted(CHECKPOINTS)}, got {key}")
    return project_path(folder) / CHECKPOINTS[key]


def verify_checkpoint(path: Path) -> None:
    """Raise if ``path`` is missing (with the command that fetches it) or fails its checksum."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing. Download it with\n    make data-models\n"
            f"or\n    mkdir -p {path.parent} && curl -L -o {path} {BASE_URL}{path.name}"
        )
    match = re.search(r"-([0-9a-f]{8,})\.", path.name)
    if match:
        digest = digest_file(path)
        if not digest.startswith(match.group(1)):
            raise RuntimeError(f"{path}: sha256 {digest[:12]}… does not match {match.group(1)}; delete it and download again")


def caffe_architecture(arch: str, num_classes: int) -> nn.Module:
    """torchvision's VGG16 / ResNet50 with the Caffe geometry (see the module docstring), untrained."""
    if arch == "vgg16":
        model = torchvision.models.vgg16(weights=None, num_classes=num_classes)
    elif arch == "resnet50":
        model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)
        model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        for stage in (model.layer2, model.layer3, model.layer4):
            stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    else:
        raise ValueError(f"arch: expected 'vgg16' or 'resnet50', got {arch!r}")
    for m in model.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True
    return model


def _vgg16_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    slots = {"classifier.0": "classifier.0", "classifier.2": "classifier.3", "classifier.4": "classifier.6"}
    renamed = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        module = slots.get(module, module)
        if module.startswith("classifier") and param == "weight":
            value = value.reshape(value.shape[0], -1)
        renamed[f"{module}.{param}"] = value
    renamed["features.0.weight"] = renamed["features.0.weight"].flip(1)  # BGR → RGB input channels
    return renamed


# A Caffe BatchNorm is two modules: "<bn>.0" holds the statistics, "<bn>.1" the affine parameters.
_CAFFE_BN = re.compile(r"(^|\.)(bn\d|downsample\.\d)\.[01]\.")


def _resnet50_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    renamed = {_CAFFE_BN.sub(r"\1\2.", key): value for key, value in state.items()}
    renamed["conv1.weight"] = renamed["conv1.weight"].flip(1)  # BGR → RGB input channels
    return renamed


def load_caffe_model(arch: str, dataset: str, path: str | Path | None = None, verify: bool = True,
                     pretrained: bool = True, fully_convolutional: bool = True) -> nn.Module:
    """A TorchRay pointing-game model in eval mode, taking Caffe-normalised RGB input.

    Args:
        arch: ``"vgg16"`` or ``"resnet50"``.
        dataset: ``"voc"`` (20 classes) or ``"coco"`` (80 classes).
        path: checkpoint file; default ``data/checkpoints/torchray/<published name>``.
        verify: check the sha256 prefix in the file name (off for files that are not the
            published ones, e.g. tests' random checkpoints).
        pretrained: ``False`` gives the untrained architecture without reading any file.
        fully_convolutional: the network as TorchRay's pointing-game benchmark runs it (output a
            class-score map ``[N, classes, h, w]``, see :mod:`reproduction.fully_conv`); ``False``
            keeps torchvision's classifier (output ``[N, classes]``).
    """
    from reproduction.fully_conv import fully_convolutional as convert

    finish = (lambda m: convert(m, arch).eval()) if fully_convolutional else (lambda m: m.eval())
    if dataset not in NUM_CLASSES:
        raise ValueError(f"dataset: expected one of {sorted(NUM_CLASSES)}, got {dataset!r}")
    if not pretrained:
        return finish(caffe_architecture(arch, NUM_CLASSES[dataset]))
    path = checkpoint_path(arch, dataset) if path is None else Path(path)
    if verify:
        verify_checkpoint(path)
    elif not path.is_file():
        raise FileNotFoundError(f"path: {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = caffe_architecture(arch, NUM_CLASSES[dataset])
    model.load_state_dict((_vgg16_state if arch == "vgg16" else _resnet50_state)(state))
    return finish(model)
