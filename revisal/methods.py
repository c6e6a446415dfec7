"""Table 2 as data: a saliency method is an (extraction site, aggregation) pair.

>>> import revisal
>>> revisal.METHODS["normgrad"]
Method('normgrad' = conv1x1 + norm: ‖g_u‖ ‖x_u‖)

Users add their own with :func:`register_method`, or pass a :class:`Method` (or a
``(site, aggregation)`` tuple) straight to :func:`revisal.saliency`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Union

from revisal.aggregations import AGGREGATIONS, Aggregation
from revisal.rules import RULES, Rule
from revisal.sites import SITES, Site


@dataclass(frozen=True)
class Method:
    """A saliency method: extract at ``site``, reduce with ``aggregation``, with ``g`` obtained by
    the backward ``rule``: ordinary backpropagation (``"plain"``, the non-invasive methods) or a
    modified one (``"guided"``, ``"deconvnet"``, ``"excitation"``, ``"contrastive_excitation"``).

    Attributes:
        name: the key its maps are stored under in :class:`revisal.SaliencyMaps`.
        site: a :class:`Site` (or its name in :data:`revisal.SITES`).
        aggregation: an :class:`Aggregation` (or its name in :data:`revisal.AGGREGATIONS`).
        formula: the resulting map in the paper's notation (documentation only).
        paper: where the method comes from.
        rule: a :class:`revisal.rules.Rule` (or its name in ``RULES``); each distinct rule costs one pass.
    """

    name: str
    site: Site
    aggregation: Aggregation
    formula: str = ""
    paper: str = ""
    rule: Rule = RULES["plain"]

    def __post_init__(self) -> None:
        for attr, registry, kind in (("site", SITES, Site), ("aggregation", AGGREGATIONS, Aggregation),
                                     ("rule", RULES, Rule)):
            value = getattr(self, attr)
            if isinstance(value, str) and value in registry:
                object.__setattr__(self, attr, registry[value])
            elif not isinstance(value, kind):
                raise ValueError(f"{attr}: unknown {attr} {value!r}; expected one of {sorted(registry)}")

    @property
    def invasive(self) -> bool:
        return self.rule.name != "plain"

    def __repr__(self) -> str:
        tail = f": {self.formula}" if self.formula else ""
        rule = f" under {self.rule.name} backprop" if self.invasive else ""
        return f"Method({self.name!r} = {self.site.name} + {self.aggregation.name}{rule}{tail})"


METHODS: dict[str, Method] = {}


def register_method(
    name: str, site: str | Site, aggregation: str | Aggregation, *, formula: str = "", paper: str = "",
    rule: str | Rule = "plain",
    overwrite: bool = False,
) -> Method:
    """Add ``name = (site, aggregation)`` to :data:`METHODS` and return it.

    Raises:
        ValueError: unknown site/aggregation, or ``name`` already registered without ``overwrite``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty str, got {name!r}")
    if name in METHODS and not overwrite:
        raise ValueError(f"name: method {name!r} is already registered (pass overwrite=True)")
    method = Method(name, site, aggregation, formula=formula, paper=paper, rule=rule)
    METHODS[name] = method
    return method


for _args in (
    ("gradient", "bias", "maxabs", "max_k |g_k|", "Simonyan et al. 2014"),
    ("gradient_sum", "bias", "sum", "Σ_k g_k", "Simonyan et al. 2014 (sum variant)"),
    ("linear_approx", "scale", "sum", "Σ_k g_k x_k", "Kindermans et al. 2016 (gradient × input)"),
    ("grad_cam", "scale_avg", "relu_sum", "(Σ_k ḡ_k x_k)₊", "Selvaraju et al. 2017"),
    ("normgrad", "conv1x1", "norm", "‖g_u‖ ‖x_u‖", "Rebuffi et al. 2020"),
    ("normgrad_conv", "conv", "norm", "‖g_u‖ ‖x^in_{u,N×N}‖ (no identity trick)", "Rebuffi et al. 2020"),
    ("selective_normgrad", "scale", "filter_norm", "‖(g_u ⊙ x_u)₊‖", "Rebuffi et al. 2020"),
):
    register_method(_args[0], _args[1], _args[2], formula=_args[3], paper=_args[4])

# Invasive baselines: the same (site, aggregation) machinery on a modified backward signal g̃
# (TorchRay's conventions: max-abs over channels for guided backprop / deconvnet, channel sum for
# excitation backprop, its positive part for the contrastive variant).
for _args in (
    ("guided_backprop", "maxabs", "guided", "max_k |g̃_k|, ReLU* = p₊·1[x>0]", "Springenberg et al. 2015"),
    ("guided_backprop_sum", "sum", "guided", "Σ_k g̃_k, ReLU* = p₊·1[x>0] (signed channel sum)",
     "Springenberg et al. 2015 (the authors' sum variant)"),
    ("deconvnet", "maxabs", "deconvnet", "max_k |g̃_k|, ReLU* = p₊", "Zeiler & Fergus 2014"),
    ("excitation_backprop", "sum", "excitation", "Σ_k p_k (winning probabilities)", "Zhang et al. 2016"),
    ("contrastive_excitation_backprop", "relu_sum", "contrastive_excitation", "(Σ_k p_k − p̄_k)₊ (minus the dual)",
     "Zhang et al. 2016"),
):
    register_method(_args[0], "bias", _args[1], formula=_args[3], paper=_args[4], rule=_args[2])

MethodSpec = Union[str, Method, tuple]

#: What :func:`revisal.saliency` computes when ``methods`` is not given: every built-in method
#: that works at any layer (``normgrad_conv`` needs a Conv2d).
DEFAULT_METHODS: tuple[str, ...] = (
    "gradient",
    "gradient_sum",
    "linear_approx",
    "grad_cam",
    "normgrad",
    "selective_normgrad",
)


def resolve_methods(methods: Iterable[MethodSpec] | MethodSpec | None) -> list[Method]:
    """Turn names, ``Method`` objects and ``(site, aggregation)`` tuples into Methods.

    Raises:
        TypeError: ``methods`` is not a name, Method, tuple or a sequence of them.
        ValueError: empty, unknown name (with close matches), or two methods with one name.
    """
    if methods is None:
        methods = DEFAULT_METHODS
    if isinstance(methods, (str, Method)):
        methods = [methods]
    elif isinstance(methods, tuple) and len(methods) == 2 and all(isinstance(m, str) for m in methods) \
            and methods[0] in SITES and methods[1] in AGGREGATIONS:
        methods = [methods]
    try:
        items = list(methods)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"methods: expected a method name, Method, (site, aggregation) tuple or a list of them, "
            f"got {type(methods).__name__}"
        ) from None
    if not items:
        raise ValueError("methods: empty; pass at least one method, e.g. ['normgrad']")
    resolved: list[Method] = []
    for item in items:
        if isinstance(item, Method):
            resolved.append(item)
        elif isinstance(item, str):
            if item not in METHODS:
                close = difflib.get_close_matches(item, list(METHODS), n=3)
                hint = f"; did you mean {close}?" if close else ""
                raise ValueError(f"methods: unknown method {item!r}{hint} Known: {sorted(METHODS)}")
            resolved.append(METHODS[item])
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(p, str) for p in item):
            resolved.append(Method(f"{item[0]}+{item[1]}", item[0], item[1]))
        else:
            raise TypeError(
                f"methods: each entry must be a name, a Method or a (site, aggregation) tuple, "
                f"got {item!r}"
            )
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"methods: requested twice: {duplicates}")
    return resolved
