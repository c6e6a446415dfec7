"""Deterministic training runs that leave the process as they found it.

:func:`deterministic` seeds torch's global generator, fixes the intra-op thread count (float sums
are reduced in a thread-count-dependent order) and turns on ``torch.use_deterministic_algorithms``
for the block; on exit, even when the block raises, the thread count, the deterministic flag and the
generator's state are put back, so a caller's later random draws are the ones it would have had.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Run the block with ``torch.manual_seed(seed)``, ``threads`` intra-op threads and deterministic algorithms."""
    if threads < 1:
        raise ValueError(f"threads: expected a positive thread count, got {threads}")
    saved_threads = torch.get_num_threads()
    saved_flag = torch.are_deterministic_algorithms_enabled()
    saved_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        try:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(True)
            torch.manual_seed(seed)
            yield
        finally:
            torch.use_deterministic_algorithms(saved_flag, warn_only=saved_warn_only)
            torch.set_num_threads(saved_threads)
