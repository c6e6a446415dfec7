"""reproduction.determinism.deterministic: seeded, single-order arithmetic inside; the process as found outside."""

from __future__ import annotations

import pytest
import torch

from reproduction.determinism import deterministic


def test_inside_seeded_and_deterministic_outside_as_found_even_after_an_error():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with deterministic(seed=7, threads=1):
            assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
            first = torch.rand(3)
            raise RuntimeError("inside")
    with deterministic(seed=7, threads=1):
        assert torch.equal(torch.rand(3), first)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream did not move


def test_refuses_a_thread_count_below_one():
    with pytest.raises(ValueError, match="threads"):
        with deterministic(seed=0, threads=0):
            pass
