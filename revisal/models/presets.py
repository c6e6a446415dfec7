"""What each zoo model expects and exposes around its network: the preprocessing its weights were
trained with, its input side, and the layers the paper's figures walk through (shallow → deep,
``""`` = the network input)."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.transforms import CAFFE_NORMALIZE, IMAGENET_NORMALIZE, TESTBED_NORMALIZE, TF_LITE_NORMALIZE, Normalize


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
_VGG16 = ("", "features.3", "features.8", "features.15", "features.22", "features.29")
_RESNET50 = ("", "layer1", "layer2", "layer3", "layer4")

PRESETS: dict[str, Preset] = {
    # 56², 28², 14², 7², 7² (after the 1×1 head conv, before global pooling) at 224² input
    "efficientnet_lite0": Preset(TF_LITE_NORMALIZE, ("blocks.1", "blocks.2", "blocks.3", "blocks.5", "bn2")),
    "vgg16": Preset(IMAGENET_NORMALIZE, _VGG16),
    "resnet50": Preset(IMAGENET_NORMALIZE, _RESNET50),
    # TorchRay's pointing-game models keep torchvision's module names and take Caffe-normalised input
    "vgg16_voc": Preset(CAFFE_NORMALIZE, _VGG16, contrast_layer="classifier.4"),
    "vgg16_coco": Preset(CAFFE_NORMALIZE, _VGG16, contrast_layer="classifier.4"),
    "resnet50_voc": Preset(CAFFE_NORMALIZE, _RESNET50, contrast_layer="avgpool"),
    "resnet50_coco": Preset(CAFFE_NORMALIZE, _RESNET50, contrast_layer="avgpool"),
    # the mini models at 64² input: 64², 32², 16², 8², 8² (no downsampling into the last stage)
    "mini_vgg": Preset(TESTBED_NORMALIZE, ("", "features.3", "features.8", "features.13", "features.17"), 64),
    "mini_resnet": Preset(TESTBED_NORMALIZE, ("", "layer1", "layer2", "layer3", "layer4"), 64),
}

#: Each model's layer preset, by zoo name.
LAYER_PRESETS: dict[str, tuple[str, ...]] = {name: preset.layers for name, preset in PRESETS.items()}
