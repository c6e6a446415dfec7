"""What each zoo model expects and exposes around its network: the preprocessing its weights were
trained with, its input side, and the layers the paper's figures walk through (shallow → deep,
``""`` = the network input)."""

from __future__ import annotations

from dataclasses import dataclass

from revisal.data.transforms import IMAGENET_NORMALIZE, TF_LITE_NORMALIZE, Normalize


@dataclass(frozen=True)
class Preset:
    """A zoo model's input spec (``normalize`` for pixels in [0, 1], square ``input_size``) and
    layer preset."""

    normalize: Normalize
    layers: tuple[str, ...]
    input_size: int = 224
    #: where contrastive excitation backprop subtracts its dual pass (TorchRay's benchmark: relu7 /
    #: the pool before fc); None: the engine's default
    contrast_layer: str | None = None


# paper § 4.2: VGG16 features.29/22/15/8/3 and the input; ResNet50 layer4/3/2/1 and the input
VGG16_LAYERS = ("", "features.3", "features.8", "features.15", "features.22", "features.29")
RESNET50_LAYERS = ("", "layer1", "layer2", "layer3", "layer4")

PRESETS: dict[str, Preset] = {
    # 56², 28², 14², 7², 7² (after the 1×1 head conv, before global pooling) at 224² input
    "efficientnet_lite0": Preset(TF_LITE_NORMALIZE, ("blocks.1", "blocks.2", "blocks.3", "blocks.5", "bn2")),
    "vgg16": Preset(IMAGENET_NORMALIZE, VGG16_LAYERS),
    "resnet50": Preset(IMAGENET_NORMALIZE, RESNET50_LAYERS),
}

