"""Cached runners for the correlation studies: layer weights (Fig. 9), class sensitivity (Figs. 6, 7),
the identity trick (Table 4), meta-saliency over training (Figs. 10, 11) and cascading
randomisation (Figs. 8, 13). Each hashes its inputs into a :class:`RunCache` key; work is split
into parts of images so a killed run resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction.cache import CACHE_ROOT, IncompleteRun, RunCache, device_of, run_cache
from reproduction.paper import AUTHORS_STAGES, COUNTERPART
from reproduction.pointing_runs import WEIGHT_KINDS, PointingResults, run_pointing_game
from reproduction.published_weights import LAYERS as PUBLISHED_LAYERS
from reproduction.published_weights import PUBLISHED_WEIGHTINGS, published_layer_weights
from revisal.activations import layer_activations
from revisal.engine import saliency
from revisal.layer_weights import layer_weights
from revisal.metrics import class_sensitivity_variants, identity_trick_correlation, spearman
from revisal.metrics.randomization import cascading_randomization, staged_blocks

SEP = "|"  # joins (method, layer) into array names


def _parts(n: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def _run_parts(cache: RunCache, n: int, part_size: int, compute: Callable[[slice], dict], desc: str,
               progress: bool) -> dict[str, np.ndarray]:
    """Compute (or load) each part of ``n`` items and concatenate the arrays along axis 0."""
    slices = _parts(n, part_size)
    out = []
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for p, sl in enumerate(slices):
            part = cache.load(p)
            if part is None:
                part = {k: np.asarray(v) for k, v in compute(sl).items()}
                cache.save(p, part)
            out.append(part)
            bar.update(sl.stop - sl.start)
    return {k: np.concatenate([o[k] for o in out]) for k in out[0]}


def weights_for_layers(zoo, images: Tensor, labels: Tensor, layers: Sequence[str], *, kinds=WEIGHT_KINDS,
                       device=None, cache_root=CACHE_ROOT, seed: int = 0,
                       compute: bool = True) -> dict[str, np.ndarray]:
    """Per-layer weights of every kind (Fig. 9) from M images sampled across classes (cached).
    ``compute=False`` only reads the cache (a merge of shards) and raises :class:`IncompleteRun`
    when the weights are not there."""
    cache = run_cache("layer_weights", cache_root, model=zoo, images=images, labels=labels, layers=list(layers),
                      kinds=list(kinds), seed=seed)
    found = cache.load(0)
    if found is None and not compute:
        raise IncompleteRun(f"layer weights: not in {cache.path}; run every shard with the same arguments first")
    if found is None:
        feats = layer_activations(zoo.model.to(device_of(device)), images.to(device_of(device)), list(layers))
        found = {kind: layer_weights(kind, features=feats, labels=labels, seed=seed) for kind in kinds}
        cache.save(0, found)
    return {k: np.asarray(v) for k, v in found.items()}


def published_pointing(zoo, source, methods: Sequence[str], weightings: Sequence[str] = PUBLISHED_WEIGHTINGS, *,
                       meta=None, **kwargs) -> dict[str, PointingResults] | None:
    """The pointing game for combinations weighted by the authors' published numbers
    (:mod:`reproduction.published_weights`), to regenerate Table 6 with them: one run per method
    (``pointing_accuracy`` is per method), sum and product of every weighting, over the model's
    non-input layers, as the authors combine. Other arguments go to :func:`.pointing.pointing_game`.

    Returns ``{method: results}``; ``{}`` when the model's non-input layers are not the authors'
    (their numbers exist for VGG16 features.3 … features.29 and ResNet-50 layer1 … layer4 only);
    ``None`` while other shards still have parts to compute.
    """
    layers = [layer for layer in zoo.layers if layer]
    arch = COUNTERPART.get(zoo.name, zoo.name)
    if not weightings or sorted(layers) != sorted(PUBLISHED_LAYERS.get(arch, ())):
        return {}
    combinations = [(kind, mode) for mode in ("sum", "product") for kind in weightings]
    out = {}
    for method in methods:
        weights = {kind: published_layer_weights(kind, arch, layers, method, meta is not None)
                   for kind in weightings}
        out[method] = run_pointing_game(zoo, source, [method], layers, combinations=combinations, weights=weights,
                                    meta=meta, **kwargs)
    return None if any(r is None for r in out.values()) else out


def run_class_sensitivity(zoo, images: Tensor, methods: Sequence[str], layers: Sequence[str], *, meta=None,
                          size=None, batch_size: int = 32, part_size: int = 64, device=None, cache_root=CACHE_ROOT,
                          progress: bool = True, absolute: bool = False) -> dict[tuple[str, str], np.ndarray]:
    """Max- vs min-class map correlation per image for every (method, layer) (paper § 4.3); signed
    Spearman, or on absolute values with ``absolute=True``. One run computes and caches both
    variants (:func:`revisal.metrics.class_sensitivity_variants`), so asking for the other is free."""
    device = device_of(device)
    model = zoo.model.to(device)
    cache = run_cache("class_sensitivity", cache_root, model=zoo, images=images, methods=list(methods),
                      layers=list(layers), meta=meta, size=size, part=part_size, variants=["signed", "absolute"])

    def compute(sl):
        corr = class_sensitivity_variants(model, images[sl].to(device), layers, methods, meta=meta, size=size,
                                          batch_size=batch_size)
        return {f"{variant}{SEP}{m}{SEP}{l}": v.cpu().numpy() for variant, by_key in corr.items()
                for (m, l), v in by_key.items()}

    arrays = _run_parts(cache, len(images), part_size, compute, f"class sensitivity {zoo.name}", progress)
    wanted = "absolute" if absolute else "signed"
    return {tuple(k.split(SEP)[1:]): v for k, v in arrays.items() if k.split(SEP)[0] == wanted}


def identity_trick(zoo, images: Tensor, target: Tensor, conv_layers: Sequence[str], *, size=None,
                   batch_size: int = 32, part_size: int = 64, device=None, cache_root=CACHE_ROOT,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """Per-image correlation of NormGrad with and without the virtual identity (Table 4)."""
    device = device_of(device)
    model = zoo.model.to(device)
    cache = run_cache("identity_trick", cache_root, model=zoo, images=images, target=target,
                      layers=list(conv_layers), size=size, part=part_size)

    def compute(sl):
        corr = identity_trick_correlation(model, images[sl].to(device), target[sl], conv_layers, size=size,
                                          batch_size=batch_size)
        return {layer: v.cpu().numpy() for layer, v in corr.items()}

    return _run_parts(cache, len(images), part_size, compute, f"identity trick {zoo.name}", progress)


def meta_dynamics(load_checkpoint: Callable[[Path], object], checkpoints: Sequence[Path], splits: dict[str, tuple],
                  methods: Sequence[str], layers: Sequence[str], meta, *, size=None, device=None,
                  cache_root=CACHE_ROOT, progress: bool = True) -> dict[str, np.ndarray]:
    """Meta-saliency over training (supp. D, Figs. 10, 11).

    For every checkpoint (epoch) and every split (``name → (images, target)``): the mean correlation
    between meta and plain maps (``"<split>|<method>|<layer>"``, [epochs]); and, for each split, the
    mean correlation between an epoch's meta maps and the last epoch's (``"final|<split>|..."``).
    The per-image correlations behind each mean are under the same key prefixed with ``"image|"``
    ([epochs, images], for bootstrap intervals). How much the maps still move from one epoch to the
    next, per image: ``"image|step|<split>|..."`` (meta maps) and ``"image|plainstep|<split>|..."``
    (plain maps), ρ(epoch t, epoch t + 1) [epochs − 1, images]; a map that stabilises has this
    correlation rising towards 1, one that drifts at a steady pace has it flat.
    """
    device = device_of(device)
    checkpoints = [Path(c) for c in checkpoints]
    cache = run_cache("meta_dynamics", cache_root, checkpoints=checkpoints, splits=splits, methods=list(methods),
                      layers=list(layers), meta=meta, size=size)
    found = cache.load(0)
    if found is not None:
        return found
    per_epoch, meta_maps, plain_maps = [], [], []
    for ckpt in tqdm(checkpoints, desc="meta dynamics", unit="epoch", disable=not progress):
        zoo = load_checkpoint(ckpt)
        model = zoo.model.to(device)
        row, maps_here, plain_here = {}, {}, {}
        for split, (x, t) in splits.items():
            x = x.to(device)
            plain = saliency(model, x, t, layers, methods)
            stepped = saliency(model, x, t, layers, methods, meta=meta)
            maps_here[split], plain_here[split] = stepped, plain
            for key in plain:
                rho = spearman(plain[key], stepped[key], size or x.shape[-2:]).cpu().numpy()
                row[f"image{SEP}{split}{SEP}{key[0]}{SEP}{key[1]}"] = rho
                row[f"{split}{SEP}{key[0]}{SEP}{key[1]}"] = float(np.nanmean(rho))
        per_epoch.append(row)
        meta_maps.append(maps_here)
        plain_maps.append(plain_here)
    out = {k: np.array([r[k] for r in per_epoch]) for k in per_epoch[0]}
    for split, (x, _) in splits.items():
        final = meta_maps[-1][split]
        for key in final:
            rho = np.stack([spearman(m[split][key], final[key], size or x.shape[-2:]).cpu().numpy() for m in meta_maps])
            out[f"image{SEP}final{SEP}{split}{SEP}{key[0]}{SEP}{key[1]}"] = rho
            out[f"final{SEP}{split}{SEP}{key[0]}{SEP}{key[1]}"] = np.nanmean(rho, axis=1)
            for name, maps in (("step", meta_maps), ("plainstep", plain_maps)):
                steps = [spearman(a[split][key], b[split][key], size or x.shape[-2:]).cpu().numpy()
                         for a, b in zip(maps, maps[1:])]
                out[f"image{SEP}{name}{SEP}{split}{SEP}{key[0]}{SEP}{key[1]}"] = (
                    np.stack(steps) if steps else np.empty((0, len(x))))
    cache.save(0, out)
    return out


def randomization(zoo, images: Tensor, target: Tensor, methods: Sequence[str], layers: Sequence[str], *,
                  blocks: Sequence[str] | None = None, meta=None, seed: int = 0, keep_maps: int = 0, size=None,
                  target_rule: str = "fixed", device=None, cache_root=CACHE_ROOT) -> dict[str, np.ndarray]:
    """Cascading randomisation (Figs. 8, 13): ``"corr|<method>|<layer>"`` [stages, N] (signed
    Spearman), ``"corr_abs|<method>|<layer>"`` (on absolute values), ``"stages"``, ``"targets"``
    [stages, N] (the class each stage explained, see ``target_rule`` of
    :func:`revisal.metrics.cascading_randomization`), and for the first ``keep_maps`` images
    ``"maps|<method>|<layer>"`` [stages, keep, H, W]."""
    device = device_of(device)
    model = zoo.model.to(device)
    cache = run_cache("randomization", cache_root, model=zoo, images=images, target=target, methods=list(methods),
                      layers=list(layers), blocks=blocks, meta=meta, seed=seed, keep=keep_maps, size=size,
                      target_rule=target_rule)
    found = cache.load(0)
    if found is not None:
        return found
    result = cascading_randomization(model, images.to(device), target, layers, methods, blocks=blocks, seed=seed,
                                     meta=meta, size=size, keep_maps=keep_maps > 0, target_rule=target_rule)
    out = {"stages": np.array(result.stages)}
    if result.targets is not None:
        out["targets"] = result.targets.numpy()
    for (m, l), corr in result.correlation.items():
        out[f"corr{SEP}{m}{SEP}{l}"] = corr.cpu().numpy()
        out[f"corr_abs{SEP}{m}{SEP}{l}"] = result.correlation_abs[m, l].cpu().numpy()
        if keep_maps:
            out[f"maps{SEP}{m}{SEP}{l}"] = np.stack(
                [s.resized(tuple(images.shape[-2:]))[m, l][:keep_maps, 0].cpu().numpy() for s in result.maps])
    cache.save(0, out)
    return out


def cascade_blocks(zoo, blocks: str | Sequence[str] | None) -> Sequence[str] | dict[str, list[str]] | None:
    """A notebook's ``*_blocks`` parameter as :func:`revisal.metrics.cascading_randomization` takes it:
    ``"authors"`` is the authors' stages for ``zoo`` (their ``sanity_check.py`` ``short`` list,
    :data:`reproduction.paper.AUTHORS_STAGES`, grouped by :func:`revisal.metrics.staged_blocks`);
    module names or ``None`` (every parameter-holding module) pass through."""
    if blocks != "authors":
        return blocks
    if zoo.name not in AUTHORS_STAGES:
        raise ValueError(f"blocks: the authors' stages exist for {sorted(AUTHORS_STAGES)}, not {zoo.name!r}")
    return staged_blocks(zoo.model, AUTHORS_STAGES[zoo.name])


def randomization_variants(zoo, images: Tensor, target: Tensor, variants: Mapping[str, tuple[str, object]],
                           layer: str, **kwargs) -> dict[str, dict[str, np.ndarray]]:
    """:func:`randomization` of named ``(method, meta)`` variants at one layer, one cascade per
    distinct meta step (``None`` or a :class:`revisal.MetaStep`) for all of its methods: methods
    that share a backward rule (and meta step) then share every forward, backward and inner SGD
    step, and each map is the one its method's own cascade gives. Other arguments go to
    :func:`randomization`.

    Returns:
        ``{variant: {"stages", "corr" [stages, N], "corr_abs" [stages, N], "targets" [stages, N] (class-id
        targets), "maps" [stages, keep, H, W] (with keep_maps)}}``.
    """
    steps: dict[object, list[str]] = {}
    for method, meta in variants.values():
        steps.setdefault(meta, [])
        if method not in steps[meta]:
            steps[meta].append(method)
    runs = {meta: randomization(zoo, images, target, methods, [layer], meta=meta, **kwargs)
            for meta, methods in steps.items()}
    out = {}
    for name, (method, meta) in variants.items():
        run = runs[meta]
        out[name] = {"stages": run["stages"], "corr": run[f"corr{SEP}{method}{SEP}{layer}"],
                     "corr_abs": run[f"corr_abs{SEP}{method}{SEP}{layer}"]}
        if "targets" in run:
            out[name]["targets"] = run["targets"]
        if f"maps{SEP}{method}{SEP}{layer}" in run:
            out[name]["maps"] = run[f"maps{SEP}{method}{SEP}{layer}"]
    return out
