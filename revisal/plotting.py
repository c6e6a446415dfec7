"""Saliency maps drawn over images, and grids of them.

Every map figure goes through :func:`show_map`, which picks the colour map from the map's sign:

* a **signed** map (some value < 0: linear approximation, gradient sum) is divided by its largest
  absolute value and drawn with a diverging colour map centred at 0 (:data:`DIVERGING`, limits
  −1 … 1), so zero is white and the sign shows;
* a **non-negative** map (NormGrad, Grad-CAM, …) is divided by its maximum and drawn with a
  sequential colour map (:data:`SEQUENTIAL`, 0 … 1).

Maps are laid over a grey copy of the image. :class:`MapGrid` draws a grid of maps (methods × layers)
for many images in turn (``python -m revisal explain``): built once, redrawn in place.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Colour map of signed maps (centred at 0) and of non-negative maps.
DIVERGING = "RdBu_r"
SEQUENTIAL = "inferno"
#: Resolution of saved figures (dots per inch).
DPI = 150


def _array(heat) -> np.ndarray:
    if isinstance(heat, torch.Tensor):
        heat = heat.detach().float().cpu().numpy()
    heat = np.asarray(heat, dtype=np.float64)
    heat = heat.reshape(heat.shape[-2:]) if heat.ndim > 2 and heat.size == np.prod(heat.shape[-2:]) else heat
    if heat.ndim != 2:
        raise ValueError(f"heat: expected one 2-D map, got shape {heat.shape}")
    return heat


def resized(heat, size: tuple[int, int] | None = None) -> np.ndarray:
    """A 2-D map as float64, bilinearly resized to ``size`` = (H, W) when given."""
    heat = _array(heat)
    if size is not None and tuple(heat.shape) != tuple(size):
        t = torch.from_numpy(heat)[None, None]
        heat = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()
    return heat


def is_signed(heat) -> bool:
    """Whether a map (or any map of a sequence) holds negative values."""
    if isinstance(heat, (list, tuple)):
        return any(is_signed(h) for h in heat if h is not None)
    return bool(np.nanmin(_array(heat)) < 0)


def scaled(heat, size: tuple[int, int] | None = None) -> np.ndarray:
    """``heat / max |heat|`` (a zero map stays zero), resized to ``size``: in [−1, 1], 0 kept at 0."""
    heat = resized(heat, size)
    peak = np.nanmax(np.abs(heat)) if heat.size else 0.0
    return heat / peak if peak > 0 else np.zeros_like(heat)


def colours(signed: bool) -> dict[str, Any]:
    """``imshow`` keywords for scaled maps: diverging centred at 0, or sequential from 0."""
    return {"cmap": DIVERGING, "vmin": -1.0, "vmax": 1.0} if signed else {"cmap": SEQUENTIAL, "vmin": 0.0, "vmax": 1.0}


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    return image[..., :3].mean(-1) if image.ndim == 3 else image


def _bare(ax) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def show_map(ax, image: np.ndarray | None, heat, *, signed: bool | None = None, alpha: float = 0.7,
             outline: np.ndarray | None = None, mark_max: bool = False, title: str | None = None,
             note: str | None = None):
    """Draw ``heat`` (any resolution) scaled by its largest absolute value over a grey ``image``
    [H, W, 3] (or alone when ``image`` is None), with the colour map of its sign (``signed``:
    default from the data). ``outline``: a boolean mask [H, W] drawn as a contour; ``mark_max``: a
    cross at the map's maximum (the pointing game's point); ``note``: text in the panel's corner.
    A flat map (:func:`revisal.maps.flat_maps`: constant up to rounding, e.g. a gradient just before
    a global average pool) is not drawn: scaled, its rounding noise would fill the panel; the panel
    says "flat map" instead.
    Returns the ``AxesImage`` of the map (for a colour bar), None for a flat map."""
    from revisal.maps import flat_maps

    size = None if image is None else tuple(np.asarray(image).shape[:2])
    if image is not None:
        ax.imshow(_grey(image), cmap="gray", vmin=0, vmax=1)
    shown = None
    if bool(flat_maps(torch.as_tensor(_array(heat))[None])[0]):
        ax.text(0.5, 0.5, "flat map\n(constant: no\nlocation, n/a)", transform=ax.transAxes, fontsize=7,
                ha="center", va="center", bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "alpha": 0.85,
                                                 "linewidth": 0})
    else:
        signed = is_signed(heat) if signed is None else signed
        values = scaled(heat, size)
        shown = ax.imshow(values, alpha=alpha if image is not None else 1.0, interpolation="bilinear",
                          **colours(signed))
        if outline is not None:
            ax.contour(np.asarray(outline, dtype=float), levels=[0.5], colors="lime", linewidths=1.2)
        if mark_max:
            y, x = np.unravel_index(int(np.nanargmax(values)), values.shape)
            ax.plot([x], [y], marker="x", color="cyan", markersize=9, markeredgewidth=2.2)
    if note:
        ax.text(0.03, 0.04, note, transform=ax.transAxes, fontsize=7, color="black",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    _bare(ax)
    if title:
        ax.set_title(title, fontsize=8)
    return shown


class MapGrid:
    """A grid of maps over one image, built once and redrawn for image after image.

    One row per ``rows`` label, one column per ``columns`` label, a colour bar per row; each panel is
    map / max |map| over a grey copy of the image, in its row's colour map (:func:`colours`, by the
    sign of the row's maps), as :func:`grid` draws it. Each panel is one RGB image composited in
    numpy, (1 − α) · grey + α · colour(map), α = 0.7, on a fixed layout, so a redraw only replaces
    image data, colour limits and texts: no layout engine, no second draw for a tight bounding box.
    """

    #: Panel side, gap, margins and colour-bar width, in inches; opacity of the maps.
    CELL, GAP, LEFT, TOP, BOTTOM, RIGHT, BAR, ALPHA = 1.8, 0.06, 0.3, 0.6, 0.08, 0.9, 0.12, 0.7

    def __init__(self, rows: Sequence[str], columns: Sequence[str], size: int):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure

        self.rows, self.columns, self.size = list(rows), list(columns), size
        n_rows, n_cols = len(self.rows), len(self.columns)
        width = self.LEFT + n_cols * self.CELL + (n_cols - 1) * self.GAP + self.RIGHT
        height = self.TOP + n_rows * self.CELL + (n_rows - 1) * self.GAP + self.BOTTOM
        dpi = float(np.clip(size / self.CELL, 100, DPI))  # a panel shows the map at about its own resolution
        self.figure = Figure(figsize=(width, height), dpi=dpi, facecolor="white")
        FigureCanvasAgg(self.figure)
        blank = np.zeros((size, size, 3), dtype=np.uint8)
        self.panels, self.bars = [], []
        for r, label in enumerate(self.rows):
            bottom = (self.BOTTOM + (n_rows - 1 - r) * (self.CELL + self.GAP)) / height
            row = []
            for c, column in enumerate(self.columns):
                ax = self.figure.add_axes(((self.LEFT + c * (self.CELL + self.GAP)) / width, bottom,
                                           self.CELL / width, self.CELL / height))
                ax.set_axis_off()
                row.append(ax.imshow(blank, interpolation="bilinear"))
                if r == 0:
                    ax.text(0.5, 1.03, column, transform=ax.transAxes, ha="center", va="bottom", fontsize=8,
                            parse_math=False)
                if c == 0:
                    ax.text(-0.04, 0.5, label, transform=ax.transAxes, ha="right", va="center", rotation=90,
                            fontsize=8, parse_math=False)
            self.panels.append(row)
            cax = self.figure.add_axes(((width - self.RIGHT + 0.08) / width, bottom + 0.075 * self.CELL / height,
                                        self.BAR / width, 0.85 * self.CELL / height))
            mappable = ScalarMappable(Normalize(0.0, 1.0), SEQUENTIAL)
            bar = self.figure.colorbar(mappable, cax=cax, alpha=self.ALPHA)
            bar.ax.tick_params(labelsize=6)
            self.bars.append((mappable, bar))
        self.title = self.figure.text(0.5, 1 - 0.08 / height, "", ha="center", va="top", fontsize=10,
                                      parse_math=False)

    def draw(self, image: np.ndarray, maps: np.ndarray, title: str = "",
             colorbar_label: str = "map / max |map|") -> None:
        """Show ``maps`` [rows, columns, H, W] (any resolution) over ``image`` [size, size, 3] (in
        [0, 1] or uint8), under ``title``."""
        from matplotlib import colormaps

        maps = np.asarray(maps)
        if maps.ndim != 4 or maps.shape[:2] != (len(self.rows), len(self.columns)):
            raise ValueError(f"maps: expected [{len(self.rows)}, {len(self.columns)}, H, W] for rows {self.rows} "
                             f"and columns {self.columns}, got shape {maps.shape}")
        grey = _grey(image)[..., None]
        side = (self.size, self.size)
        if grey.shape[:2] != side:
            raise ValueError(f"image: expected [{self.size}, {self.size}, 3], got shape {np.shape(image)}")
        for row, maps_row, (mappable, bar) in zip(self.panels, maps, self.bars):
            signed = is_signed(list(maps_row))
            look = colours(signed)
            cmap = colormaps[look["cmap"]]
            for panel, heat in zip(row, maps_row):
                values = (scaled(heat, side) - look["vmin"]) / (look["vmax"] - look["vmin"])
                rgb = (1 - self.ALPHA) * grey + self.ALPHA * cmap(values)[..., :3]
                panel.set_data(np.rint(rgb * 255).astype(np.uint8))
            mappable.set_cmap(cmap)
            mappable.set_clim(look["vmin"], look["vmax"])
            bar.set_label(colorbar_label + (" (signed)" if signed else ""), fontsize=6)
        self.title.set_text(title)

    def png(self) -> bytes:
        """The figure as PNG bytes (RGB, zlib level 1, no metadata: the same drawing gives the same bytes)."""
        from PIL import Image

        canvas = self.figure.canvas
        canvas.draw()
        buf = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def pdf(self) -> bytes:
        """The figure as PDF bytes (no creation date: the same drawing gives the same bytes)."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="pdf", metadata={"CreationDate": None})
        return buf.getvalue()
