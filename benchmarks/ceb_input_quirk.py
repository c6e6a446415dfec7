"""How much the authors' input-layer cEB quirk moves the pointing game (docs/deviations.md).

In the authors' runs (TorchRay normgrad branch, batch 1, one call per class), the 2nd and later
classes of an image reuse an input tensor that already requires grad, so contrastive excitation
backprop's dual pass accumulates into the input's gradient and cancels the contrast: their
input-layer cEB map for those pairs is ``clamp(EB, min=0)``. revisal computes the true cEB. This
script scores both at the input on a VOC07 folder and prints the accuracies (all / difficult) and
how many points differ::

    python benchmarks/ceb_input_quirk.py --model resnet50_voc --root data/voc [--checkpoint-dir DIR]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch.nn.functional as F

from reproduction.objectives import PointingObjective
from reproduction.profiles import detection_source, profile_model
from reproduction.sources import acceptance_region
from revisal import saliency
from revisal.metrics.pointing import gaussian_smooth, maxima


def measure(zoo, source) -> dict:
    pairs = source.pairs()
    hits = {"ceb": [], "quirk": []}
    moved = later = 0
    seen: set[int] = set()
    for pair in pairs:
        x, masks, sizes = source.load([pair])
        maps = saliency(zoo.model, x, PointingObjective([pair.class_id]), [""],
                        ["excitation_backprop", "contrastive_excitation_backprop"], contrast_layer=zoo.contrast_layer)
        size = sizes[0]
        region = acceptance_region(masks[0], source.tolerance)
        quirky = pair.image in seen  # a 2nd or later class of its image
        seen.add(pair.image)
        points = {}
        for name, m in (("ceb", maps["contrastive_excitation_backprop", ""]),
                        ("quirk", maps["excitation_backprop", ""].clamp(min=0) if quirky
                         else maps["contrastive_excitation_backprop", ""])):
            m = gaussian_smooth(F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False),
                                0.02 * max(size))
            xs, ys = maxima(m)
            points[name] = (int(xs[0]), int(ys[0]))
            hits[name].append(bool(region[ys[0], xs[0]]))
        later += quirky
        moved += points["ceb"] != points["quirk"]
    out = {"pairs": len(pairs), "later_classes": later, "points_moved": moved}
    ids = np.array([p.class_id for p in pairs])
    for subset in ("all", "difficult"):
        keep = np.array([subset == "all" or p.difficult for p in pairs])
        for name, h in hits.items():
            h = np.array(h)[keep]
            per_class = [h[ids[keep] == c].mean() if (ids[keep] == c).any() else 0.0 for c in range(source.num_classes)]
            out[f"{name} {subset}"] = 100 * float(np.mean(per_class))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50_voc")
    parser.add_argument("--root", required=True)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--no-verify-checkpoints", dest="verify", action="store_false")
    parser.add_argument("--input-size", type=int, default=224)
    args = parser.parse_args()
    zoo = profile_model(args.model, {"checkpoint_dir": args.checkpoint_dir, "verify_checkpoints": args.verify})
    source = detection_source(zoo, "voc07", args.root, args.input_size)
    result = measure(zoo, source)
    for key, value in result.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
