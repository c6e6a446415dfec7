"""Small networks trained here on the synthetic testbed (the ``mini`` profile's VGG16 / ResNet50).

* ``mini_vgg``: a plain conv/ReLU/max-pool stack named like torchvision's VGG (``features.N``,
  ``classifier.N``), no BatchNorm, fully connected head (so gradients vary over space, as in VGG16).
* ``mini_resnet``: BatchNorm, one basic residual block per stage ``layer1..layer4``, global average
  pooling and ``fc`` (as in ResNet50, the last layer's gradient is spatially constant).

Both start with a stride-2 convolution (like ResNet's stem; it makes CPU training 4× faster) and
do not downsample into their last stage (``last_stride=1``): at 64² input the stages run at 32²,
16², 8², 8². A last-stage map cell is then 1/8 of the image side, no coarser than ResNet-50's
``layer4`` on 224² VOC07 (7², 1/7), and a map that marks the right cell can still land within the
pointing game's tolerance: an oracle map (the object mask, area-pooled to the map grid) hits 99.3% of
the testbed's pairs at 8² but only 75.2% at 4² (``docs/deviations.md``, "The mini profile's limits").
With ``last_stride=2`` the last stage runs at 4², as the captioner's encoder does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock


class MiniVGG(nn.Module):
    """Four stages of two 3×3 conv + ReLU (16-32-64-128 channels; the first conv has stride 2) with
    max-pooling between stages (none before the last when ``last_stride=1``), then max-pool, flatten
    and a two-layer classifier.

    With ``batch_norm=True`` a BatchNorm follows every conv: that is how it is *trained* (a plain
    stack this deep trains too slowly for the CPU budget); :func:`fold_batch_norm` then folds each
    BN into its conv, giving the plain conv/ReLU/max-pool network that is saved and explained.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128),
                 convs: tuple[int, ...] = (2, 2, 2, 2), hidden: int = 256, image_size: int = 64,
                 last_stride: int = 1, batch_norm: bool = False):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride: expected 1 or 2, got {last_stride!r}")
        self.config = dict(widths=widths, convs=convs, hidden=hidden, image_size=image_size, last_stride=last_stride)
        layers: list[nn.Module] = []
        channels = 3
        for stage, (width, count) in enumerate(zip(widths, convs)):
            if stage and (stage < len(widths) - 1 or last_stride == 2):
                layers.append(nn.MaxPool2d(2))
            for k in range(count):
                stride = 2 if stage == 0 and k == 0 else 1
                layers.append(nn.Conv2d(channels, width, 3, stride=stride, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d(2)
        side = image_size // 2 ** (len(widths) + (last_stride == 2))
        self.classifier = nn.Sequential(
            nn.Linear(channels * side * side, hidden), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(hidden, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@torch.no_grad()
def fold_batch_norm(trained: MiniVGG) -> MiniVGG:
    """The plain (BN-free) MiniVGG computing the same function as ``trained`` in eval mode:
    ``W' = W·γ/√(σ²+ε)``, ``b' = (b − μ)·γ/√(σ²+ε) + β`` for every conv followed by a BatchNorm."""
    convs = [m for m in trained.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in trained.features if isinstance(m, nn.BatchNorm2d)]
    if len(norms) != len(convs):
        raise ValueError("trained: expected a BatchNorm after every conv (built with batch_norm=True)")
    plain = MiniVGG(trained.classifier[-1].out_features, **trained.config)
    plain_convs = [m for m in plain.features if isinstance(m, nn.Conv2d)]
    for conv, bn, target in zip(convs, norms, plain_convs):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        target.weight.copy_(conv.weight * scale[:, None, None, None])
        target.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    plain.classifier.load_state_dict(trained.classifier.state_dict())
    return plain.eval()


class MiniResNet(nn.Module):
    """3×3 stride-2 stem, one torchvision ``BasicBlock`` per stage (16-32-64-128; stride 2 into
    ``layer2`` and ``layer3``, ``last_stride`` into the last stage), global average pooling, ``fc``."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128), stem_stride: int = 2,
                 last_stride: int = 1):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride: expected 1 or 2, got {last_stride!r}")
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        channels = widths[0]
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else last_stride if i == len(widths) else 2
            down = None
            if stride != 1 or channels != width:
                down = nn.Sequential(nn.Conv2d(channels, width, 1, stride, bias=False), nn.BatchNorm2d(width))
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(channels, width, stride, down)))
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """The last stage's activations ``[N, 128, S/8, S/8]`` (``S/16`` with ``last_stride=2``), before
        global pooling."""
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.features(x)).flatten(1))


ARCHITECTURES = {"mini_vgg": MiniVGG, "mini_resnet": MiniResNet}


def build(name: str, num_classes: int, *, for_training: bool = False, **kwargs) -> nn.Module:
    """An untrained mini network; ``for_training`` gives the variant that is optimised (MiniVGG
    with BatchNorm, folded away by :func:`export`)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"name: unknown mini model {name!r}; expected one of {sorted(ARCHITECTURES)}")
    if name == "mini_vgg" and for_training:
        kwargs["batch_norm"] = True
    return ARCHITECTURES[name](num_classes, **kwargs)


def export(model: nn.Module) -> nn.Module:
    """The network that is saved and explained: a copy in eval mode, BatchNorm folded for MiniVGG."""
    import copy

    if isinstance(model, MiniVGG) and any(isinstance(m, nn.BatchNorm2d) for m in model.features):
        return fold_batch_norm(model.eval())
    return copy.deepcopy(model).eval()
