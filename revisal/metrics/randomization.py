"""Cascading randomisation sanity check (Adebayo et al., NeurIPS 2018; paper § 4.5, Figs. 8, 13)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from revisal.metrics.correlation import spearman


def default_blocks(model: nn.Module) -> list[str]:
    """Modules holding parameters directly, from the top of the network down (reverse registration
    order, which is the forward order for sequential models)."""
    names = [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def blocks_above(model: nn.Module, blocks: Iterable[str], layer: str) -> list[str]:
    """The blocks of a cascade that lie above ``layer`` (``""``: the input), in the cascade's order:
    modules registered after it and not inside it (registration order, as :func:`default_blocks`).

    A cascade re-initialises from the top, so the stage of the last of these is "every layer above
    the map's layer re-initialised, the layer itself and everything below it still trained": the
    stage at which the paper reads a map as scrambled by the late layers (§ 4.5).
    """
    order = {name: k for k, (name, _) in enumerate(model.named_modules())}
    blocks = list(blocks)
    unknown = [b for b in [*blocks, layer] if b not in order]
    if unknown:
        raise ValueError(f"blocks/layer: no module {unknown[0]!r} in the model")
    inside = (lambda b: False) if layer == "" else (lambda b: b.startswith(layer + "."))
    return [b for b in blocks if order[b] > order[layer] and not inside(b)]


def late_stage(model: nn.Module, blocks: Sequence[str] | Mapping[str, Sequence[str]] | None, layer: str) -> int:
    """The stage the paper reads a map at (§ 4.5: "scrambled by the late layers"): the index, into
    :attr:`RandomizationResult.stages` (0: the trained model), of the last stage of the cascade at which
    every module re-initialised so far lies above ``layer``, so that the next stage would reach the
    map's layer or below it (0 when the first stage already does).

    ``blocks`` takes the forms :func:`cascading_randomization` takes: module names, one per stage, or
    stages ``{name: [modules]}`` (:func:`staged_blocks`), or ``None`` for :func:`default_blocks`. A stage
    is judged by the modules it re-initialises, not by its name: the authors' stage ``features.22`` of
    VGG16 re-initialises ``features.24`` … ``features.28``, all above ``features.22``.
    """
    if isinstance(blocks, Mapping):
        groups = [list(members) for members in blocks.values()]
    else:
        groups = [[b] for b in (list(blocks) if blocks is not None else default_blocks(model))]
    above = set(blocks_above(model, [m for g in groups for m in g], layer))
    k = 0
    while k < len(groups) and all(m in above for m in groups[k]):
        k += 1
    return k


def staged_blocks(model: nn.Module, stages: Sequence[str]) -> dict[str, list[str]]:
    """Group a model's parameter-holding modules into cascade stages named by ``stages`` (top to
    bottom): stage ``s`` re-initialises the modules registered at or after ``s`` that no earlier stage
    did (so stage k of the cascade has everything from the top down to ``stages[k]`` re-initialised,
    as in the authors' sanity check; a stage that adds nothing repeats the previous model). Pass the
    result as ``blocks`` to :func:`cascading_randomization` (the reproduction's
    ``reproduction.paper.AUTHORS_STAGES[arch]`` are the authors' stages)."""
    order = {name: k for k, (name, _) in enumerate(model.named_modules())}
    unknown = [s for s in stages if s not in order]
    if unknown:
        raise ValueError(f"stages: no module {unknown[0]!r} in the model")
    if any(order[a] < order[b] for a, b in zip(stages, stages[1:])):
        raise ValueError(f"stages: expected modules from the top of the network down, got {list(stages)}")
    holding = default_blocks(model)[::-1]  # registration order
    groups, done = {}, set()
    for stage in stages:
        groups[stage] = [b for b in holding if order[b] >= order[stage] and b not in done]
        done.update(groups[stage])
    return groups


def randomize(module: nn.Module | Sequence[nn.Module], seed: int) -> None:
    """Re-initialise every submodule that can (``reset_parameters``) of ``module`` (or of each module of
    a sequence, in order, from one random stream), reproducibly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in [module] if isinstance(module, nn.Module) else module:
            for m in part.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()


#: Which class each stage explains: ``"fixed"``, the given target at every stage; ``"predicted"``,
#: the authors' rule (their ``sanity_check.py``): the given target (the ground truth) at stage 0,
#: then at each later stage the partially randomised model's own top class.
TARGET_RULES = ("fixed", "predicted")


@dataclass
class RandomizationResult:
    """``stages[0]`` is the trained model; stage k has ``blocks[:k]`` re-initialised. ``targets``
    holds the class each stage explained ([stages, N])."""

    stages: list[str]
    correlation: dict[tuple[str, str], Tensor]  # (method, layer) → float64 [stages, N], signed Spearman
    correlation_abs: dict[tuple[str, str], Tensor] = field(default_factory=dict)  # the same on |maps| in [-1, 1]
    targets: Tensor | None = None
    maps: list = field(default_factory=list, repr=False)  # SaliencyMaps per stage when keep_maps


def cascading_randomization(model: nn.Module, images: Tensor, target, layers: Iterable[str], methods: Iterable,
                            *, blocks: Sequence[str] | Mapping[str, Sequence[str]] | None = None, seed: int = 0, meta=None,
                            size: tuple[int, int] | None = None, keep_maps: bool = False,
                            batch_size: int | None = None, target_rule: str = "fixed") -> RandomizationResult:
    r"""Re-initialise ``blocks`` one at a time from the top of the network down and, at every stage,
    correlate each (method, layer) map with the trained model's map (Spearman per image, signed and
    on absolute values: :func:`revisal.metrics.spearman` with ``absolute=True``).

    A method that explains the *model* loses correlation as its weights are randomised; one that
    mostly reflects the input (guided backprop, per Adebayo et al.) keeps it. Runs on a deep copy:
    the caller's model is never modified.

    Args:
        blocks: module names, re-initialised cumulatively in this order (default
            :func:`default_blocks`: every parameter-holding module from the output down); or stages,
            ``{name: [modules re-initialised at that stage]}`` in order (:func:`staged_blocks`, e.g.
            stages of :func:`staged_blocks`).
        seed: stage k re-initialises its block with ``seed + k``.
        keep_maps: also return each stage's maps (for figures).
        target_rule: ``"fixed"`` explains ``target`` at every stage; ``"predicted"`` (the authors')
            explains ``target`` at stage 0 and the partially randomised model's top class
            (``argmax`` of its ``[N, C]`` output) at every later stage. See :data:`TARGET_RULES`.
    """
    from revisal.engine import saliency
    from revisal.validation import check_layers

    layers, methods = list(layers), list(methods)
    work = copy.deepcopy(model)
    if isinstance(blocks, Mapping):
        groups = {str(name): list(members) for name, members in blocks.items()}
    else:
        groups = {b: [b] for b in (list(blocks) if blocks is not None else default_blocks(work))}
    members = [m for group in groups.values() for m in group]
    if members:
        check_layers(work, members)
    blocks = list(groups)
    modules = dict(work.named_modules())
    size = size or tuple(images.shape[-2:])
    if target_rule not in TARGET_RULES:
        raise ValueError(f"target_rule: expected one of {TARGET_RULES}, got {target_rule!r}")
    if target_rule == "predicted":
        if not isinstance(target, Tensor) or target.dtype not in (torch.int32, torch.int64) or target.shape != images.shape[:1]:
            raise ValueError("target: target_rule='predicted' needs class ids, an integer Tensor [N] "
                             f"(the stage-0 targets), got {target!r:.80}")
        target = target.to(images.device)

    def stage_target(k: int):
        if k == 0 or target_rule == "fixed":
            return target
        with torch.no_grad():
            out = torch.cat([work(chunk.clone()) for chunk in images.split(batch_size or len(images))])
        if out.dim() != 2:
            raise ValueError(f"target_rule: 'predicted' needs a model output [N, C], got {tuple(out.shape)}")
        return out.argmax(1)

    targets, stage_maps = [], []
    for k, block in enumerate([None, *blocks]):
        if block is not None:
            randomize([modules[member] for member in groups[block]], seed + k)
        targets.append(stage_target(k))
        stage_maps.append(saliency(work, images, targets[-1], layers, methods, meta=meta, batch_size=batch_size))
    first = stage_maps[0]
    correlation = {key: torch.stack([spearman(first[key], s[key], size) for s in stage_maps]) for key in first}
    absolute = {key: torch.stack([spearman(first[key], s[key], size, absolute=True) for s in stage_maps])
                for key in first}
    ids = torch.stack([t.cpu() for t in targets]) if isinstance(target, Tensor) and target.dim() == 1 else None
    return RandomizationResult(["trained", *blocks], correlation, absolute, ids, stage_maps if keep_maps else [])
