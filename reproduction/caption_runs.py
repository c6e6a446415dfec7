"""The compute behind notebook 06 (paper supp. F, Fig. 14): caption saliency over testbed scenes and
where its mass falls (objects the caption names, objects it leaves out, background).

Cheap enough not to cache (one forward/backward through a 0.7 M-parameter captioner per batch of
64² scenes: a few seconds for a thousand scenes on 2 CPU cores).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction.captioner import caption_saliency, greedy_captions, mask_mass, named_objects
from reproduction.captioner.model import Captioner
from reproduction.testbed import TESTBED_NORMALIZE, TestbedSplit
from revisal.combine import combine, normalize_maps
from revisal.layer_weights import layer_weights


def explain_captions(captioner: Captioner, images: Tensor, layers: Sequence[str], method: str = "selective_normgrad",
                     mode: str = "product", weights: str = "linear", word: int | None = None,
                     tokens: Tensor | None = None) -> dict:
    """Greedy captions of ``images`` (normalised), the method's map at each layer and their
    combination (``weights`` scheme, ``mode`` sum/product) at the image size.

    Returns ``{"tokens", "captions", "maps": {layer: [N, H, W]}, "combined": [N, H, W]}`` (numpy).
    """
    if tokens is None:
        tokens, texts = greedy_captions(captioner, images)
    else:
        texts = captioner.vocab.decode(tokens)
    maps = caption_saliency(captioner, images, tokens, list(layers), [method], word=word)
    per_layer = [maps[method, layer] for layer in layers]
    size = tuple(images.shape[-2:])
    combined = combine(per_layer, layer_weights(weights, num_layers=len(layers)), mode, size=size)
    return {"tokens": tokens, "captions": texts,
            "maps": {layer: maps.resized(size)[method, layer][:, 0].cpu().numpy() for layer in layers},
            "combined": combined[:, 0].cpu().numpy()}


def mass_check(captioner: Captioner, split: TestbedSplit, indices: Sequence[int], layers: Sequence[str],
               method: str = "selective_normgrad", mode: str = "product", weights: str = "linear",
               batch_size: int = 64, progress: bool = True) -> dict:
    """Share of each map's mass on the objects the generated caption names, on the scene's other
    objects, and on the background, per scene; with the areas they cover.

    Runs on the captioner's device. Each map is min-max normalised (as in :func:`revisal.combine`)
    before its mass is measured.
    Returns numpy arrays keyed ``"<map>|named"``, ``"<map>|other"``, ``"<map>|background"`` for
    ``<map>`` in ``layers`` and ``"combined"``, plus ``"area|named"``/``"area|other"``, ``"captions"``,
    ``"exact"`` (the generated caption equals the reference, so "named" is exactly the objects the
    reference names) and ``"indices"``.
    """
    if not indices:
        raise ValueError("indices: no scenes to check")
    dev = next(captioner.parameters()).device
    out: dict[str, list] = {"captions": [], "indices": []}
    starts = range(0, len(indices), batch_size)
    for start in tqdm(starts, desc="caption saliency", unit="batch", disable=not progress):
        idx = list(indices[start:start + batch_size])
        images = TESTBED_NORMALIZE(split.pixels(idx)).to(dev)
        res = explain_captions(captioner, images, layers, method, mode, weights)
        masks = []
        for i, text in zip(idx, res["captions"]):
            objects = split.objects(i)
            named = named_objects(text, objects)
            slots = split.arrays["instances"][i]
            named_mask = np.isin(slots, [j + 1 for j, n in enumerate(named) if n])
            other_mask = np.isin(slots, [j + 1 for j, n in enumerate(named) if not n])
            masks.append(np.stack([named_mask, other_mask]))
        masks_t = torch.from_numpy(np.stack(masks))
        out.setdefault("area|named", []).append(masks_t[:, 0].double().mean(dim=(1, 2)).numpy())
        out.setdefault("area|other", []).append(masks_t[:, 1].double().mean(dim=(1, 2)).numpy())
        for name, heat in [*res["maps"].items(), ("combined", res["combined"])]:
            h = normalize_maps(torch.from_numpy(np.ascontiguousarray(heat))[:, None].double())[:, 0]
            share = mask_mass(h, masks_t).numpy()
            out.setdefault(f"{name}|named", []).append(share[:, 0])
            out.setdefault(f"{name}|other", []).append(share[:, 1])
            out.setdefault(f"{name}|background", []).append(1 - share.sum(1))
        out["captions"] += res["captions"]
        out["indices"] += idx
        out.setdefault("exact", []).append(np.array([t == split.caption(i) for t, i in zip(res["captions"], idx)]))
    return {k: (np.concatenate(v) if k not in ("captions", "indices") else np.asarray(v)) for k, v in out.items()}
