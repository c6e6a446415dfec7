"""TorchRay's pointing-game networks in fully convolutional form (its ``get_model(...,
convert_to_fully_convolutional=True)``), as the paper's Table 3 ran them.

* VGG16: ``features`` then ``classifier`` with each ``nn.Linear`` turned into the convolution that
  computes it at every position: ``classifier.0`` a 7×7 convolution over the 512 channels of
  ``features`` (weight ``W.view(4096, 512, 7, 7)``), ``classifier.3`` and ``classifier.6`` 1×1
  convolutions. No adaptive pooling: an ``H×W`` input gives a class-score map of
  ``(⌈H/32⌉ − 6) × (⌈W/32⌉ − 6)`` (Caffe's ceil-mode pooling).
* ResNet50: ``fc`` becomes a 1×1 convolution and the flatten is dropped; with ``backprop_pool``
  (what TorchRay's benchmark does for every backprop method) the global average pool becomes a
  7×7 stride-1 average pool, so a 224×224 input still gives a 1×1 map and a larger one a map.

Module names stay torchvision's (``features.29``, ``classifier.4``, ``layer4``, ``avgpool``), so the
paper's layer and contrast-layer names address the same tensors. Parameters are shared with the
source model, not copied.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv_from_linear(linear: nn.Linear, in_channels: int, kernel: int) -> nn.Conv2d:
    """The convolution ``y_u = W x_{u, k×k} + b`` equal to ``linear`` on each k×k window of
    ``in_channels`` channels (``linear.in_features == in_channels·k²``, channel-major as torch flattens)."""
    out_channels = linear.out_features
    conv = nn.Conv2d(in_channels, out_channels, kernel, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    conv.weight = nn.Parameter(linear.weight.detach().view(out_channels, in_channels, kernel, kernel),
                               requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        conv.bias = linear.bias
    return conv


class FullyConvVGG(nn.Module):
    """``classifier(features(x))``: a VGG whose classifier is convolutional; output ``[N, classes, h, w]``."""

    def __init__(self, vgg: nn.Module):
        super().__init__()
        self.features = vgg.features
        layers = []
        first = True
        for layer in vgg.classifier:
            if isinstance(layer, nn.Linear):
                channels = layer.in_features // 49 if first else layer.in_features
                layer = _conv_from_linear(layer, channels, 7 if first else 1)
                first = False
            layers.append(layer)
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class FullyConvResNet(nn.Module):
    """torchvision's ResNet forward without the flatten, ``fc`` a 1×1 convolution; output ``[N, classes, h, w]``."""

    def __init__(self, resnet: nn.Module, backprop_pool: bool = True):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(resnet, name))
        self.avgpool = nn.AvgPool2d((7, 7), stride=1) if backprop_pool else resnet.avgpool
        self.fc = _conv_from_linear(resnet.fc, resnet.fc.in_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x))


def fully_convolutional(model: nn.Module, arch: str, backprop_pool: bool = True) -> nn.Module:
    """``model`` (a torchvision-layout VGG16 or ResNet50) as a fully convolutional network in the
    same mode, sharing its parameters (see the module docstring).

    Raises:
        ValueError: ``arch`` is not ``"vgg16"`` or ``"resnet50"``.
    """
    if arch == "vgg16":
        out = FullyConvVGG(model)
    elif arch == "resnet50":
        out = FullyConvResNet(model, backprop_pool)
    else:
        raise ValueError(f"arch: expected 'vgg16' or 'resnet50', got {arch!r}")
    return out.train(model.training)
