"""The autouse fixture's detector sees what it claims to see (else a leak would pass silently)."""

from __future__ import annotations

import os

import torch
from global_state import changes, restore, snapshot

from revisal import methods


def test_changes_name_a_switch_a_registry_and_the_environment_and_restore_puts_them_back():
    before = snapshot()
    try:
        torch.set_default_dtype(torch.float64)
        methods.METHODS["leaked"] = methods.METHODS[next(iter(methods.METHODS))]
        os.environ["REVISAL_LEAKED"] = "1"
        named = "\n".join(changes(before, snapshot()))
    finally:
        restore(before)
    assert "torch.get_default_dtype()" in named and "revisal.methods.METHODS: added ['leaked']" in named
    assert "os.environ: added ['REVISAL_LEAKED']" in named
    assert changes(before, snapshot()) == []
    assert torch.get_default_dtype() == torch.float32 and "leaked" not in methods.METHODS
    assert "REVISAL_LEAKED" not in os.environ
