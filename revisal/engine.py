"""``revisal.saliency``: every method at every layer from one forward and one backward per rule."""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn
from tqdm import tqdm

from revisal.collect import Request
from revisal.layouts import check_layout_argument
from revisal.maps import SaliencyMaps
from revisal.meta import MetaStep, meta_maps
from revisal.methods import MethodSpec, resolve_methods
from revisal.state import preserved_state
from revisal.validation import (
    Target,
    check_finite_maps,
    check_images,
    check_images_fit_model,
    check_int,
    check_layers,
    check_methods_at_layers,
    check_model,
    check_target,
)


def saliency(
    model: nn.Module,
    images: Tensor,
    target: Target,
    layers: Iterable[str] | str,
    methods: Iterable[MethodSpec] | MethodSpec | None = None,
    *,
    meta: object | None = None,
    contrast_layer: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    layout: Mapping[str, str | Callable] | None = None,
) -> SaliencyMaps:
    r"""Extract & Aggregate saliency maps (Rebuffi et al., CVPR 2020, Algorithm 1).

    Let ``y`` be the objective (by default the target logit), ``x`` the output of a requested
    module and ``g = ∂y/∂x`` its gradient. Each method is a pair (site, aggregation):

    * extract the contribution ``c_u`` of location u to the gradient of a spatially shared weight:
      ``g_u`` (bias identity), ``g_u ⊙ x_u`` (scale identity), ``g_u x_uᵀ`` (1×1 conv identity),
      ``g_u x^{in}_{u,N×N}ᵀ`` (the module's own N×N convolution);
    * aggregate it to a scalar: ``Σ_k c_k``, ``max_k |c_k|``, ``‖c‖`` or ``‖(c)₊‖``.

    E.g. NormGrad ``= ‖g_u‖·‖x_u‖``, selective NormGrad ``= ‖(g_u ⊙ x_u)₊‖``, linear approximation
    ``= Σ_k g_{ku} x_{ku}``, gradient ``= max_k |g_{ku}|``, Grad-CAM ``= (Σ_k ḡ_k x_{ku})₊`` with
    ``ḡ`` the spatial mean of ``g``. The invasive baselines (guided backprop, deconvnet, (contrastive)
    excitation backprop) use the same sites and aggregations on a pseudo-gradient from modified
    backward rules. See ``revisal.METHODS`` for the registry.

    All non-invasive methods at all layers come from one forward and one ``torch.autograd.grad``
    call per batch (chunk), :func:`revisal.collect.collect`; each backward rule the invasive
    methods use costs one more. Call graph: ``saliency → Request.run`` (or ``meta_maps →
    Request.run`` / vmapped ``collect``) ``→ collect`` per rule ``→ layer_maps`` per layer.
    Parameters are frozen during the call, so no weight gradient is ever computed.

    Args:
        model: any ``nn.Module``; run in eval mode during the call. float16 and bfloat16 models
            work (the excitation rules compute their ratios in float32).
        images: float batch ``[N, C, H, W]`` on the model's device, of its parameters' dtype (any
            dtype under autocast). The caller's tensor is never written, and every pass starts from
            its values, also when the model writes to its input in place.
        target: a class id for all images, N class ids (integers of any type), a class name or N
            names looked up in ``model.classes`` (a sequence of class names in output order, as the
            zoo's models have), or ``callable(model_output) -> Tensor[N]`` giving each sample's
            objective (e.g. a caption's log-probability).
        layers: a module name from ``model.named_modules()`` or any iterable of them (list, tuple,
            generator, numpy array...); ``""`` is the network input.
        methods: names in ``revisal.METHODS``, ``Method`` objects or ``(site, aggregation)`` tuples,
            one or any iterable of them; default: every built-in non-invasive method that works at
            any layer.
        meta: a :class:`revisal.MetaStep` for meta-saliency (maps computed after one inner SGD step
            per sample, paper § 4.4).
        contrast_layer: contrastive EB subtracts the dual excitation at this layer and every layer
            below it (default: at every layer; the dual negates the classifier, i.e. the last
            linear map, conv or linear, that runs in the forward pass).
        batch_size: split the batch into chunks of this size (one pass per chunk and rule).
        progress: show a progress bar over chunks.
        layout: per layer, how its output is laid out, where the model does not say it: ``"nchw"``,
            ``"nhwc"``, ``"tokens"`` or ``f(t) -> [N, C, h, w]`` (:mod:`revisal.layouts`). Token
            sequences ``[N, T, C]`` (ViT, DeiT; prefix tokens dropped) and channels-last maps
            ``[N, H, W, C]`` (Swin, ConvNeXt MLPs) are read from the model; an ambiguous shape is refused.

    Returns:
        :class:`SaliencyMaps` with one ``Tensor[N, 1, h, w]`` (float32, or float64 for a float64
        model; the layer's resolution) per ``(method, layer)``.

    Raises:
        TypeError / ValueError naming the offending argument, before any compute where it can be
        known then (unknown layer or method, wrong rank, images of another dtype or device than the
        model, NaN/Inf input, unknown class name, target out of range or of the wrong length, a
        real-conv method at a layer that is not an ``nn.Conv2d``), or after the forward pass (a
        layer that does not run, runs twice or runs without gradients, e.g. in a reentrant
        ``torch.utils.checkpoint`` block; an invasive method through a checkpointed block).
        :class:`revisal.NonFiniteMapError` (a ``FloatingPointError`` and a ``ValueError``) if a map
        has NaN or Inf values. The model is left exactly as it was, also on error.
    """
    model = check_model(model)
    images = check_images(images)
    check_images_fit_model(model, images)
    layer_names = check_layers(model, layers)
    layouts = check_layout_argument(layout)
    if layouts:
        check_layers(model, list(layouts), "layout")
    method_list = resolve_methods(methods)
    check_methods_at_layers(model, method_list, layer_names)
    if contrast_layer is not None:
        if not isinstance(contrast_layer, str):
            raise TypeError(f"contrast_layer: expected a module name (str) or None, got {type(contrast_layer).__name__}")
        contrast_layer = check_layers(model, contrast_layer, "contrast_layer")[0]
    n = images.shape[0]
    ids = check_target(target, n, getattr(model, "classes", None))
    if meta is not None and not isinstance(meta, MetaStep):
        raise TypeError(f"meta: expected a revisal.MetaStep or None, got {type(meta).__name__}")
    if batch_size is None:
        batch_size = n
    batch_size = check_int(batch_size, "batch_size", minimum=1)

    request = Request(model, layer_names, method_list, contrast_layer, layouts)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]  # before freezing
    hint = "" if meta is None else f"; MetaStep(lr={meta.lr:g}) may step too far, try a smaller lr"
    parts = []
    with preserved_state(model), torch.inference_mode(False):  # images made under inference mode work too
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="saliency", unit="batch", disable=not progress or len(starts) == 1):
            chunk = slice(start, start + batch_size)
            # cloned: a normal tensor (the loss saves it for backward) also when called under inference mode
            chunk_target = ids[chunk].clone() if isinstance(ids, Tensor) else ids
            if meta is None:
                maps, _ = request.run(images[chunk], chunk_target)
            else:
                maps = meta_maps(request, images[chunk], chunk_target, meta, trainable)
            check_finite_maps(maps, hint)
            parts.append(SaliencyMaps(maps, [m.name for m in method_list], layer_names))
    return parts[0] if len(parts) == 1 else SaliencyMaps.concat(parts)
