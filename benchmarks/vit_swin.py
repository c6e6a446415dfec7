"""Transformers: one pass for every method at every block, and NormGrad on a real Linear vs the identity.

    python benchmarks/vit_swin.py [--batch 4] [--repeats 3]

Random weights, CPU, batch 4, 224². For a ViT-S/16 and a Swin-T (timm) it times
  (a) a plain forward + backward of the target logits (parameter gradients included, as in training),
  (b) ``revisal.saliency`` with the 6 non-invasive methods at every block (ViT: 12 blocks but the
      last, whose patch tokens get no gradient under class-token pooling; Swin: its 4 stages), one pass,
  (c) Grad-CAM alone at the same blocks with pytorch-grad-cam, one call per block, with the
      ``reshape_transform`` its users write;
and prints (b)/(a) and (c)/(b) (a lower bound: (c) makes 1 of the 6 methods).

Then, as Table 4 does for convolutions, the Spearman correlation per image between NormGrad at the
real layer (``normgrad_conv`` at ``mlp.fc1``: ``‖g_u‖‖x^in_u‖``, the Linear applied to every token)
and NormGrad with the virtual identity after it (``normgrad``: ``‖g_u‖‖x^out_u‖``), on the ViT, mean
± std over images, per block.
"""

from __future__ import annotations

import argparse

import timm
import torch
from sweep import plain_backward, timed  # benchmarks/ is on the path when a script here runs

import revisal
from revisal.metrics import spearman

METHODS = list(revisal.DEFAULT_METHODS)


def vit_tokens(t):
    return t[:, 1:].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)


def swin_channels_last(t):
    return t.permute(0, 3, 1, 2)


def grad_cam_loop(model, x, ids, blocks, reshape):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    modules = dict(model.named_modules())
    targets = [ClassifierOutputTarget(int(c)) for c in ids]
    for block in blocks:
        with GradCAM(model=model, target_layers=[modules[block]], reshape_transform=reshape) as cam:
            cam(input_tensor=x, targets=targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(args.batch) * 7
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, CPU, "
          f"batch {args.batch}, 224²")
    print("| model | blocks | (a) fwd+bwd s | (b) revisal 6 methods × blocks s | (c) pytorch-grad-cam Grad-CAM "
          "loop s | (b)/(a) | (c)/(b) |")
    print("|---|---|---|---|---|---|---|")
    models = {
        "vit_small_patch16_224": ([f"blocks.{i}" for i in range(11)], vit_tokens),
        "swin_tiny_patch4_window7_224": ([f"layers.{i}" for i in range(4)], swin_channels_last),
    }
    for name, (blocks, reshape) in models.items():
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        t_a, _ = timed(lambda: plain_backward(model, x, ids), args.repeats)
        t_b, _ = timed(lambda: revisal.saliency(model, x, ids, blocks, METHODS), args.repeats)
        t_c, _ = timed(lambda: grad_cam_loop(model, x.clone().requires_grad_(True), ids, blocks, reshape), 1)
        print(f"| {name} | {len(blocks)} | {t_a:.2f} | {t_b:.2f} | {t_c:.2f} | {t_b / t_a:.2f} | {t_c / t_b:.1f} |")

    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
    fc1 = [f"blocks.{i}.mlp.fc1" for i in (0, 3, 7, 10)]
    maps = revisal.saliency(model, x, ids, fc1, ["normgrad", "normgrad_conv"])
    print("\n| layer (ViT-S/16, random weights) | Spearman ρ, real Linear vs virtual identity, mean ± std |")
    print("|---|---|")
    for layer in fc1:
        rho = spearman(maps["normgrad", layer], maps["normgrad_conv", layer])
        print(f"| {layer} | {float(rho.mean()):.3f} ± {float(rho.std()):.3f} |")


if __name__ == "__main__":
    main()
