"""Heat-map overlays and method × layer grids for the notebooks."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def normalized(heat: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """A 2-D map min-max scaled to [0, 1] (a constant map becomes zeros), bilinearly resized."""
    t = torch.as_tensor(np.asarray(heat, dtype=np.float32) if not isinstance(heat, torch.Tensor) else heat)
    t = t.detach().float().cpu().reshape(1, 1, *t.shape[-2:])
    if size is not None and tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    lo, hi = t.min(), t.max()
    return ((t - lo) / (hi - lo).clamp_min(1e-12)).numpy()[0, 0]


def blend(image: np.ndarray, heat, *, alpha: float = 0.55, cmap: str = "jet") -> np.ndarray:
    """``image`` [H, W, 3] (float in [0, 1] or uint8) with the colour-mapped, min-max scaled ``heat`` mixed in."""
    import matplotlib

    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255

    colours = matplotlib.colormaps[cmap](normalized(heat, image.shape[:2]))[..., :3]
    return np.clip((1 - alpha) * image + alpha * colours, 0, 1)


def overlay(ax, image: np.ndarray, heat, *, alpha: float = 0.55, cmap: str = "jet", title: str | None = None) -> None:
    """Draw ``image`` [H, W, 3] with ``heat`` (any resolution) scaled and laid over it."""
    ax.imshow(blend(image, heat, alpha=alpha, cmap=cmap))
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def grid(image: np.ndarray, rows: Mapping[str, Sequence], columns: Sequence[str], *, cell: float = 1.7,
         suptitle: str | None = None, images: Sequence[np.ndarray] | None = None):
    """A figure with one row per entry of ``rows`` (label → one map per column) over ``image``
    (or over ``images[r]`` for row r); a ``None`` map shows the image alone."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows), squeeze=False)
    for r, (label, maps) in enumerate(rows.items()):
        if len(maps) != n_cols:
            raise ValueError(f"rows[{label!r}]: {len(maps)} maps for {n_cols} columns")
        for c, heat in enumerate(maps):
            picture = image if images is None else images[r]
            if heat is None:
                axes[r, c].imshow(picture)
                axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
                if r == 0 and columns[c]:
                    axes[r, c].set_title(columns[c], fontsize=9)
            else:
                overlay(axes[r, c], picture, heat, title=columns[c] if r == 0 else None)
        axes[r, 0].set_ylabel(label, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
