"""The grid pointing game (Böhle, Fritz, Schiele, CVPR 2022, "B-cos networks"): an image is a
``rows × cols`` mosaic of photos of distinct classes; explaining the class of one cell, a map
*hits* when its maximum lies inside that cell. Chance is ``1 / (rows · cols)``.

Ties follow Quantus's pointing game (a hit when any location holding the maximum is in the cell),
except that a constant map (no maximum to point with) is a miss.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _check_grid(grid: object) -> tuple[int, int]:
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1 for g in grid)):
        raise ValueError(f"grid: expected (rows, cols) of positive ints, got {grid!r}")
    return int(grid[0]), int(grid[1])


def cell_masks(size: tuple[int, int], grid: tuple[int, int] = (2, 2)) -> np.ndarray:
    """Boolean masks ``[rows·cols, H, W]`` of the cells in row-major order; cell (r, c) spans rows
    ``⌊rH/R⌋ … ⌊(r+1)H/R⌋ − 1`` and columns likewise."""
    rows, cols = _check_grid(grid)
    h, w = size
    masks = np.zeros((rows * cols, h, w), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            masks[r * cols + c, r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols] = True
    return masks


def grid_hits(maps: Tensor | np.ndarray, cells: Sequence[int] | np.ndarray, grid: tuple[int, int] = (2, 2),
              size: tuple[int, int] | None = None) -> np.ndarray:
    r"""Hits ``[N]`` (bool) of maps ``[N, 1, h, w]`` (or ``[N, h, w]``) whose targets sit in cell
    ``cells[i]`` (row-major index) of a ``grid`` mosaic.

    With :math:`\hat m` the map bilinearly resized to ``size`` (default: as given) and
    :math:`U^* = \arg\max_u \hat m_u` (all maximisers), hit :math:`= [U^* \cap \text{cell} \ne \emptyset]`
    and :math:`\max \hat m > \min \hat m`.
    """
    m = torch.as_tensor(np.asarray(maps)) if not isinstance(maps, Tensor) else maps.detach()
    if m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1:
        raise ValueError(f"maps: expected [N, 1, h, w] or [N, h, w], got shape {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError("maps: NaN or infinite values")
    rows, cols = _check_grid(grid)
    cells = np.asarray(cells)
    if cells.shape != (m.shape[0],) or not np.issubdtype(cells.dtype, np.integer) \
            or cells.min(initial=0) < 0 or cells.max(initial=0) >= rows * cols:
        raise ValueError(f"cells: expected {m.shape[0]} cell indices in [0, {rows * cols}), got {cells.tolist()}")
    if size is not None and tuple(size) != tuple(m.shape[-2:]):
        m = F.interpolate(m.double(), size=tuple(size), mode="bilinear", align_corners=False)
    m = m.double().cpu().numpy()[:, 0]
    masks = cell_masks(m.shape[-2:], (rows, cols))
    flat = m.reshape(len(m), -1)
    top = flat == flat.max(axis=1, keepdims=True)
    inside = masks.reshape(len(masks), -1)[cells]
    return (top & inside).any(axis=1) & (flat.max(axis=1) > flat.min(axis=1))


__all__ = ["cell_masks", "grid_hits"]
