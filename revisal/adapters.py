"""revisal's maps through the interfaces of the evaluation libraries people already use.

* :func:`quantus_explain_func` has Quantus's ``explain_func`` signature ``(model, inputs, targets,
  **kwargs) -> np.ndarray``, so every Quantus metric can score NormGrad, selective NormGrad,
  meta-saliency or any other revisal method::

      import quantus
      from revisal.adapters import quantus_explain_func
      quantus.PointingGame()(model, x, y, s_batch=masks, explain_func=quantus_explain_func,
                             explain_func_kwargs={"method": "selective_normgrad", "layer": "features.29"})

* :class:`LayerAttribution` is a Captum-style attribution object, ``attribute(inputs, target)``,
  for any revisal method at one layer (``LayerAttribution(model, "layer4", "grad_cam")`` gives
  what ``captum.attr.LayerGradCam(model, model.layer4).attribute(x, t, relu_attributions=True)`` gives).

Neither imports Quantus or Captum: they only speak their conventions.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from revisal.engine import saliency
from revisal.meta import MetaStep
from revisal.methods import METHODS, Method
from revisal.validation import check_images, check_materialised, check_model, check_target

#: Keyword arguments Quantus itself adds to ``explain_func_kwargs`` (ignored here: the model's own
#: device is used).
_QUANTUS_KWARGS = ("device",)


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return (p.dtype, p.device) if p is not None else (torch.float32, torch.device("cpu"))


def _check_method(method: str | Method) -> str | Method:
    if isinstance(method, Method):
        return method
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected a name in revisal.METHODS ({sorted(METHODS)}) or a Method, got {method!r}")
    return method


def _layer_name(model: nn.Module, layer: str | nn.Module) -> str:
    if isinstance(layer, str):
        return layer
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name
        raise ValueError("layer: the module given is not a submodule of the model")
    raise TypeError(f"layer: expected a module name (str) or an nn.Module of the model, got {type(layer).__name__}")


def quantus_explain_func(model: nn.Module, inputs: np.ndarray | Tensor, targets: np.ndarray | Tensor | Sequence[int],
                         *, method: str | Method = "normgrad", layer: str = "", meta_lr: float | None = None,
                         resize: bool = True, batch_size: int | None = None, **kwargs) -> np.ndarray:
    r"""Quantus ``explain_func``: maps ``[N, 1, H, W]`` (float32 numpy) of ``method`` at ``layer``.

    For image i with target class t_i the map is :func:`revisal.saliency` of the logit ``z_{t_i}``
    (e.g. ``method="normgrad"``: ``‖∂z_t/∂x_u‖·‖x_u‖`` at each location u of ``layer``), after one
    meta-saliency step ``θ' = θ − 2·meta_lr·∇θ CE`` when ``meta_lr`` is given, bilinearly resized
    to the input's H × W when ``resize`` (Quantus's localisation metrics compare maps with
    input-sized masks).

    Args:
        model: the ``nn.Module`` Quantus passes (inputs are cast to its parameters' dtype and device).
        inputs: ``[N, C, H, W]`` (numpy or tensor, channels first).
        targets: N class ids, or one for all, of an integer type (Python, NumPy or tensor); floats,
            even integral ones such as 2.0, are refused as :func:`revisal.saliency` refuses them.
        kwargs: Quantus's own ``device`` entry is accepted and ignored; anything else is an error.
    """
    unknown = sorted(set(kwargs) - set(_QUANTUS_KWARGS))
    if unknown:
        raise TypeError(f"quantus_explain_func: unexpected keyword arguments {unknown}; expected method, layer, "
                        "meta_lr, resize, batch_size")
    check_materialised(check_model(model))
    dtype, device = _model_dtype_device(model)
    x = inputs if isinstance(inputs, Tensor) else torch.from_numpy(np.ascontiguousarray(inputs))
    if x.dim() != 4:
        raise ValueError(f"inputs: expected a batch [N, C, H, W], got shape {tuple(x.shape)}")
    if x.is_meta:
        raise ValueError("inputs: on the meta device, which holds no values; pass real images")
    x = check_images(x.detach().to(device=device, dtype=dtype), "inputs")
    t = check_target(targets, x.shape[0], getattr(model, "classes", None))
    if meta_lr is not None and (isinstance(meta_lr, bool) or not isinstance(meta_lr, numbers.Real) or meta_lr <= 0):
        raise ValueError(f"meta_lr: expected a positive learning rate or None, got {meta_lr!r}")
    meta = MetaStep(lr=float(meta_lr)) if meta_lr is not None else None
    name = _check_method(method)
    label = name if isinstance(name, str) else name.name
    maps = saliency(model, x, t, [layer], [name], meta=meta, batch_size=batch_size)
    if resize:
        maps = maps.resized(tuple(x.shape[-2:]))
    return maps[label, layer].detach().float().cpu().numpy()


class LayerAttribution:
    r"""Captum-style attribution of one revisal method at one layer.

    ``attribute(inputs, target)`` returns ``[N, 1, h, w]`` at the layer's resolution (or the
    input's, with ``upsample=True``), e.g. for ``method="grad_cam"``: ``(Σ_k ḡ_k x_{k,u})₊`` with
    ``x`` the layer's output and ``ḡ_k`` the spatial mean of ``∂z_t/∂x_k`` — Captum's
    ``LayerGradCam`` with ``relu_attributions=True``.

    Args:
        forward_func: the model (an ``nn.Module``, as Captum's ``forward_func``).
        layer: the module (as in Captum) or its name; ``""`` is the input.
        method: a name in ``revisal.METHODS`` or a :class:`revisal.Method`.
        meta_lr: meta-saliency step size, or None.
    """

    def __init__(self, forward_func: nn.Module, layer: nn.Module | str, method: str | Method = "normgrad",
                 meta_lr: float | None = None):
        if not isinstance(forward_func, nn.Module):
            raise TypeError(f"forward_func: expected an nn.Module, got {type(forward_func).__name__}")
        self.forward_func = forward_func
        self.layer = _layer_name(forward_func, layer)
        self.method = _check_method(method)
        if meta_lr is not None and (isinstance(meta_lr, bool) or not isinstance(meta_lr, numbers.Real) or meta_lr <= 0):
            raise ValueError(f"meta_lr: expected a positive learning rate or None, got {meta_lr!r}")
        self.meta = MetaStep(lr=float(meta_lr)) if meta_lr is not None else None

    def attribute(self, inputs: Tensor, target: int | Sequence[int] | Tensor, upsample: bool = False) -> Tensor:
        """Maps ``[N, 1, h, w]`` of the target logit(s) (see the class docstring)."""
        if target is None:
            raise ValueError("target: required (a class id or N class ids), as for Captum's multi-class models")
        check_images(inputs, "inputs")
        label = self.method if isinstance(self.method, str) else self.method.name
        maps = saliency(self.forward_func, inputs, target, [self.layer], [self.method], meta=self.meta)
        if upsample:
            maps = maps.resized(tuple(inputs.shape[-2:]))
        return maps[label, self.layer]

    def __repr__(self) -> str:
        label = self.method if isinstance(self.method, str) else self.method.name
        return f"LayerAttribution({type(self.forward_func).__name__}, layer={self.layer!r}, method={label!r})"


__all__ = ["LayerAttribution", "quantus_explain_func"]
