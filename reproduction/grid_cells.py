"""The grid pointing game (Böhle, Fritz, Schiele, CVPR 2022, "B-cos networks"): an image is a
``rows × cols`` mosaic of photos of distinct classes; explaining the class of one cell, a map
*hits* when its maximum lies inside that cell. Chance is ``1 / (rows · cols)``.

Each location (pixel of the mosaic) belongs to exactly one cell: the cells are a half-open
partition of the pixel grid (:func:`cell_masks`). A map points at one cell when every location
holding its maximum lies in that cell; a tie between locations in different cells (a peak on a
cell boundary, which bilinear resizing spreads symmetrically over the cells it touches) points at
no cell and is a miss for every target, never a hit in each cell it touches. So is a constant map
(no maximum to point with). Quantus's pointing game differs on such ties: it counts a hit when
any maximiser is in the cell.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from revisal.maps import check_size, flat_maps
from revisal.metrics.pointing import refuse_unscorable


def _check_grid(grid: object) -> tuple[int, int]:
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1 for g in grid)):
        raise ValueError(f"grid: expected (rows, cols) of positive ints, got {grid!r}")
    return int(grid[0]), int(grid[1])


def cell_masks(size: tuple[int, int], grid: tuple[int, int] = (2, 2)) -> np.ndarray:
    """Boolean masks ``[rows·cols, H, W]`` of the cells in row-major order; cell (r, c) spans rows
    ``⌊rH/R⌋ … ⌊(r+1)H/R⌋ − 1`` and columns likewise, so every pixel is in exactly one cell."""
    rows, cols = _check_grid(grid)
    h, w = size
    masks = np.zeros((rows * cols, h, w), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            masks[r * cols + c, r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols] = True
    return masks


def _resize_rounding(shape: tuple[int, int]) -> float:
    """A bound, relative to the map's largest magnitude, on float64 rounding in PyTorch's bilinear
    resize of an ``h × w`` map: source positions ``(o + ½)·h/H − ½`` carry an error of a few ulps of
    ``max(h, w)``, the four-term weighted sum a few more. Values of the resized map closer than this
    to its maximum are tied with it (a peak on a cell boundary, whose exact resize is symmetric)."""
    return 4 * (max(shape) + 4) * float(np.finfo(np.float64).eps)


def grid_hits(maps: Tensor | np.ndarray, cells: Sequence[int] | np.ndarray, grid: tuple[int, int] = (2, 2),
              size: tuple[int, int] | None = None) -> np.ndarray:
    r"""Hits ``[N]`` (bool) of maps ``[N, 1, h, w]`` (or ``[N, h, w]``) whose targets sit in cell
    ``cells[i]`` (row-major index) of a ``grid`` mosaic.

    With :math:`\hat m` the map bilinearly resized to ``size`` (default: as given) and
    :math:`U^* = \arg\max_u \hat m_u` (all maximisers), hit :math:`= [U^* \subseteq \text{cell}]`
    and the map is not flat: maximisers in two cells are a tie, a miss for both. A flat map
    (:func:`revisal.maps.flat_maps`, constant up to rounding) has no maximum, so it is no hit here
    either; a runner scores it "n/a" (:func:`revisal.maps.flat_maps` tells which).
    After a resize, values within its float64 rounding of the maximum count as maximisers.
    Empty maps and maps holding NaN or ±Inf are refused (ValueError naming ``maps``).
    """
    m = torch.as_tensor(np.asarray(maps)) if not isinstance(maps, Tensor) else maps.detach()
    if m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1:
        raise ValueError(f"maps: expected [N, 1, h, w] or [N, h, w], got shape {tuple(m.shape)}")
    refuse_unscorable(m, "maps")
    rows, cols = _check_grid(grid)
    cells = np.asarray(cells)
    if cells.shape != (m.shape[0],) or (cells.size and not np.issubdtype(cells.dtype, np.integer)) \
            or cells.min(initial=0) < 0 or cells.max(initial=0) >= rows * cols:
        raise ValueError(f"cells: expected {m.shape[0]} cell indices in [0, {rows * cols}), got {cells.tolist()}")
    rounding = 0.0
    if size is not None and check_size(size) != tuple(m.shape[-2:]):
        rounding = _resize_rounding(m.shape[-2:])
        m = F.interpolate(m.double(), size=check_size(size), mode="bilinear", align_corners=False)
    m = m.double().cpu().numpy()[:, 0]
    masks = cell_masks(m.shape[-2:], (rows, cols))
    flat = m.reshape(len(m), m.shape[-2] * m.shape[-1])
    peak = flat.max(axis=1, keepdims=True, initial=-np.inf)
    top = flat >= peak - rounding * np.abs(flat).max(axis=1, keepdims=True, initial=0)
    inside = masks.reshape(len(masks), -1)[cells.astype(np.intp)]
    pointed = ~(top & ~inside).any(axis=1)  # no maximiser outside the target's cell
    return pointed & ~flat_maps(flat).numpy()


__all__ = ["cell_masks", "grid_hits"]
