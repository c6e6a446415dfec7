"""What a test may not leave changed: torch's process-wide switches and revisal's registries.

:func:`snapshot` reads them; :func:`changes` names what differs between two snapshots. The autouse
fixture in ``conftest.py`` takes one before and one after every test, fails the test that changed
anything (naming what), and puts the state back so that the tests after it run as they would alone.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.modules.module as nn_module
from torch.overrides import _get_current_function_mode_stack
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

# Not a test's doing: pytest rewrites the first per phase of every test; scikit-learn sets the KMP
# pair when first imported (by nltk, say), once per process, whichever test imports it first.
_NOT_THE_TESTS = frozenset({"PYTEST_CURRENT_TEST", "KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"})

_HOOK_DICTS = sorted(n for n in dir(nn_module) if n.startswith("_global_") and n.endswith(("hooks", "called")))


def _registries() -> dict[str, dict]:
    """Every module-level registry a user or a test can extend, by dotted name."""
    from revisal import aggregations, explain, methods, ops, rules, sites
    from revisal.models import presets, zoo

    return {"revisal.methods.METHODS": methods.METHODS, "revisal.rules.RULES": rules.RULES, "revisal.ops.OPS": ops.OPS,
            "revisal.sites.SITES": sites.SITES, "revisal.aggregations.AGGREGATIONS": aggregations.AGGREGATIONS,
            "revisal.models.presets.PRESETS": presets.PRESETS, "revisal.models.zoo.LOADERS": zoo.LOADERS,
            "revisal.explain.NORMALIZATIONS": explain.NORMALIZATIONS}


# name -> (read, restore); restore(value) puts the snapshot's value back.
SWITCHES: dict[str, tuple[Callable[[], object], Callable[[object], None]]] = {
    "torch.is_grad_enabled()": (torch.is_grad_enabled, torch.set_grad_enabled),
    "torch.is_inference_mode_enabled()": (torch.is_inference_mode_enabled, lambda v: torch._C._set_grad_enabled(True)),
    "torch.is_anomaly_enabled()": (torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    "torch.get_default_dtype()": (torch.get_default_dtype, torch.set_default_dtype),
    "torch.get_num_threads()": (torch.get_num_threads, torch.set_num_threads),
    "torch.are_deterministic_algorithms_enabled()": (torch.are_deterministic_algorithms_enabled,
                                                     torch.use_deterministic_algorithms),
    "torch.backends.mkldnn.enabled": (lambda: torch.backends.mkldnn.enabled,
                                      lambda v: setattr(torch.backends.mkldnn, "enabled", v)),
}


def snapshot() -> dict[str, object]:
    state: dict[str, object] = {name: read() for name, (read, _) in SWITCHES.items()}
    state["torch function modes"] = tuple(_get_current_function_mode_stack())
    state["torch dispatch modes"] = tuple(_get_current_dispatch_mode_stack())
    for name in _HOOK_DICTS:
        state[f"torch.nn.modules.module.{name}"] = dict(getattr(nn_module, name))
    for name, registry in _registries().items():
        state[name] = dict(registry)
    state["os.environ"] = {k: v for k, v in os.environ.items() if k not in _NOT_THE_TESTS}
    state["os.getcwd()"] = os.getcwd()
    return state


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(a[k] is b[k] or a[k] == b[k] for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return a == b


def changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """One line per item that differs, naming it (and, for dicts, the keys added, removed or rebound)."""
    lines = []
    for name, old in before.items():
        new = after[name]
        if _same(old, new):
            continue
        if isinstance(old, dict):
            added, removed = sorted(map(str, new.keys() - old.keys())), sorted(map(str, old.keys() - new.keys()))
            rebound = sorted(str(k) for k in old.keys() & new.keys() if not (old[k] is new[k] or old[k] == new[k]))
            lines.append(f"{name}: added {added[:5]}, removed {removed[:5]}, rebound {rebound[:5]}")
        else:
            lines.append(f"{name}: {old!r} -> {new!r}")
    return lines


def restore(before: dict[str, object]) -> None:
    """Put back what :func:`changes` would report (mode stacks cannot be unwound from outside: not restored)."""
    for name, (read, write) in SWITCHES.items():
        if read() != before[name]:
            write(before[name])
    for name in _HOOK_DICTS:
        hooks = getattr(nn_module, name)
        hooks.clear()
        hooks.update(before[f"torch.nn.modules.module.{name}"])
    for name, registry in _registries().items():
        registry.clear()
        registry.update(before[name])
    environ = {k: v for k, v in os.environ.items() if k not in _NOT_THE_TESTS}
    if environ != before["os.environ"]:
        for key in environ.keys() - before["os.environ"].keys():
            del os.environ[key]
        os.environ.update(before["os.environ"])
    if os.getcwd() != before["os.getcwd()"]:
        os.chdir(before["os.getcwd()"])
