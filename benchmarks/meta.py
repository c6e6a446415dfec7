"""Cost of meta-saliency: revisal's batched implementation vs the naive per-image loop vs plain saliency.

    python benchmarks/meta.py [--batch 8] [--size 224] [--repeats 2]

ResNet-50 (random weights, CPU), 5 methods × 4 layers. Times
  (a) plain ``revisal.saliency``,
  (b) ``revisal.saliency(..., meta=MetaStep(1e-3))`` with its default batching ("auto": "loop" on CPU),
  (c) the same with ``batching="vmap"`` (torch.func per-sample gradients and a vmapped second pass),
  (d) the naive reference: per image, deep-copy the model, one ``torch.optim.SGD(lr=2ε)`` step on that
      image's cross-entropy, then plain saliency on the copy.
Also times the per-sample gradient step alone, the part of meta-saliency that plain saliency lacks.
Target: (b)/(a) ≤ 3 and (b) < (d). Ratios come from one run on one machine; times are medians.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

import revisal

METHODS = ["gradient", "linear_approx", "normgrad", "selective_normgrad", "grad_cam"]
LAYERS = ["layer1", "layer2", "layer3", "layer4"]


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive(model, x, ids, eps=1e-3):
    for i in range(len(x)):
        clone = copy.deepcopy(model)
        opt = torch.optim.SGD(clone.parameters(), lr=2 * eps)
        opt.zero_grad()
        F.cross_entropy(clone(x[i : i + 1]), ids[i : i + 1]).backward()
        opt.step()
        revisal.saliency(clone, x[i : i + 1], int(ids[i]), LAYERS, METHODS)


def per_sample_gradients(model, x, ids):
    """What meta-saliency adds to a plain pass: each image's full backward with weight gradients."""
    params = list(model.parameters())
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), ids[i : i + 1])
        torch.autograd.grad(loss, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(args.batch) * 7
    meta = revisal.MetaStep(1e-3)
    t_plain = timed(lambda: revisal.saliency(model, x, ids, LAYERS, METHODS), args.repeats)
    t_meta = timed(lambda: revisal.saliency(model, x, ids, LAYERS, METHODS, meta=meta), args.repeats)
    t_vmap = timed(lambda: revisal.saliency(model, x, ids, LAYERS, METHODS,
                                            meta=revisal.MetaStep(1e-3, batching="vmap")), 1)
    t_naive = timed(lambda: naive(model, x, ids), args.repeats)
    t_grads = timed(lambda: per_sample_gradients(model, x, ids), 1)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, ResNet-50, batch {args.batch}, "
          f"{args.size}², {len(METHODS)} methods × {len(LAYERS)} layers")
    print("| variant | seconds | × plain |")
    print("|---|---|---|")
    for name, t in (("(a) plain saliency", t_plain), ("(b) meta, default batching (loop on CPU)", t_meta),
                    ("(c) meta, batching='vmap'", t_vmap), ("(d) naive per-image loop", t_naive),
                    ("per-sample gradients alone (part of b)", t_grads)):
        print(f"| {name} | {t:.2f} | {t / t_plain:.2f} |")


if __name__ == "__main__":
    main()
