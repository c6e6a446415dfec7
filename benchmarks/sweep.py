"""Cost of a saliency sweep: revisal's single pass vs a plain backward vs Captum per (method, layer).

    python benchmarks/sweep.py [--batch 4] [--size 224] [--repeats 3]

On ResNet-50 and VGG-16 (random weights, CPU) it times
  (a) a plain forward + backward of the target logits (parameter gradients included, as in training),
  (b) ``revisal.saliency`` with 5 methods × 4 layers (20 maps, one pass),
  (c) the same 20 maps with Captum's per-layer classes, one attribute call per map (NormGrad, which
      Captum lacks, from its layer gradient and activation).
Targets: (b)/(a) ≤ 1.3 and (c)/(b) ≥ 10. Ratios come from one run on one machine; times are medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import revisal

METHODS = ["gradient", "linear_approx", "normgrad", "selective_normgrad", "grad_cam"]
MODELS = {
    "resnet50": (torchvision.models.resnet50, ["layer1", "layer2", "layer3", "layer4"]),
    "vgg16": (torchvision.models.vgg16, ["features.8", "features.15", "features.22", "features.29"]),
}


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def plain_backward(model, x, ids):
    model.zero_grad(set_to_none=True)
    model(x).gather(1, ids[:, None]).sum().backward()


def captum_maps(model, x, ids, layers):
    from captum.attr import LayerActivation, LayerGradCam, LayerGradientXActivation

    modules = dict(model.named_modules())
    out = {}
    for layer in layers:
        m = modules[layer]
        grad = lambda: LayerGradientXActivation(model, m, multiply_by_inputs=False).attribute(x, target=ids)
        gxa = lambda: LayerGradientXActivation(model, m).attribute(x, target=ids)
        out["gradient", layer] = grad().abs().amax(1, keepdim=True)
        out["linear_approx", layer] = gxa().sum(1, keepdim=True)
        act = LayerActivation(model, m).attribute(x)
        out["normgrad", layer] = grad().norm(dim=1, keepdim=True) * act.norm(dim=1, keepdim=True)
        out["selective_normgrad", layer] = gxa().clamp_min(0).norm(dim=1, keepdim=True)
        out["grad_cam", layer] = LayerGradCam(model, m).attribute(x, target=ids, relu_attributions=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, batch {args.batch}, {args.size}²")
    print("| model | (a) fwd+bwd s | (b) revisal 20 maps s | (c) Captum 20 maps s | (b)/(a) | (c)/(b) | max rel. diff (b) vs (c) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        make, layers = MODELS[name]
        torch.manual_seed(0)
        model = make().eval()
        x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        ids = torch.arange(args.batch) * 7
        t_a, _ = timed(lambda: plain_backward(model, x, ids), args.repeats)
        t_b, ours = timed(lambda: revisal.saliency(model, x, ids, layers, METHODS), args.repeats)
        model.zero_grad(set_to_none=True)
        t_c, theirs = timed(lambda: captum_maps(model, x, ids, layers), 1)
        diff = max(
            float((ours[k] - theirs[k].detach()).abs().max() / theirs[k].detach().abs().max().clamp_min(1e-30))
            for k in theirs
        )
        print(f"| {name} | {t_a:.2f} | {t_b:.2f} | {t_c:.2f} | {t_b / t_a:.2f} | {t_c / t_b:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
