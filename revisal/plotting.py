"""Figures for the notebooks: saliency maps over images, grids of them, lines with interval bands.

Every map figure goes through :func:`show_map`, which picks the colour map from the map's sign:

* a **signed** map (some value < 0: linear approximation, gradient sum) is divided by its largest
  absolute value and drawn with a diverging colour map centred at 0 (:data:`DIVERGING`, limits
  −1 … 1), so zero is white and the sign shows;
* a **non-negative** map (NormGrad, Grad-CAM, …) is divided by its maximum and drawn with a
  sequential colour map (:data:`SEQUENTIAL`, 0 … 1).

Maps are laid over a grey copy of the image and every row of a :func:`grid` gets a colour bar.
:func:`grid` also returns the plotted values (one row per pixel of each map, at the map's own
resolution) for :func:`revisal.report.save_figure`'s ``values``. Statistical plots use seaborn
(:func:`lines_with_bands`); their bands are bootstrap intervals (:mod:`revisal.verdicts`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Colour map of signed maps (centred at 0) and of non-negative maps.
DIVERGING = "RdBu_r"
SEQUENTIAL = "inferno"
#: Resolution of saved figures (dots per inch).
DPI = 150


def style() -> None:
    """The notebooks' look: seaborn's ``ticks`` theme, a readable font size, figures at :data:`DPI`."""
    import matplotlib
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", font_scale=0.8)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": DPI, "axes.titlesize": 9,
                                "image.interpolation": "nearest"})


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
    Returns the ``AxesImage`` of the map (for a colour bar)."""
    size = None if image is None else tuple(np.asarray(image).shape[:2])
    signed = is_signed(heat) if signed is None else signed
    values = scaled(heat, size)
    if image is not None:
        ax.imshow(_grey(image), cmap="gray", vmin=0, vmax=1)
    shown = ax.imshow(values, alpha=alpha if image is not None else 1.0, interpolation="bilinear", **colours(signed))
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


def map_values(rows: Mapping[str, Sequence], columns: Sequence[str], max_side: int = 32) -> list[dict[str, Any]]:
    """The maps of a grid as plotted values: one row per map pixel, raw (before scaling), 4
    significant digits. A map larger than ``max_side`` on a side (one already resized to the image)
    is area-averaged down to at most ``max_side`` × ``max_side`` so the CSV stays small."""
    out = []
    for label, maps in rows.items():
        for column, heat in zip(columns, maps):
            if heat is None:
                continue
            heat = _array(heat)
            if max(heat.shape) > max_side:
                t = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
                heat = F.adaptive_avg_pool2d(t, (min(heat.shape[0], max_side), min(heat.shape[1], max_side)))[0, 0].numpy()
            for (y, x), v in np.ndenumerate(heat):
                out.append({"row": label, "column": column, "y": y, "x": x, "value": float(f"{v:.4g}")})
    return out


def grid(image: np.ndarray | None, rows: Mapping[str, Sequence], columns: Sequence[str], *, cell: float = 1.8,
         suptitle: str | None = None, images: Sequence[np.ndarray] | None = None,
         signed: Mapping[str, bool] | None = None, notes: Mapping[str, Sequence[str | None]] | None = None,
         outlines: Mapping[str, Sequence[np.ndarray | None]] | None = None, mark_max: bool = False,
         colorbar_label: str = "map / max |map|"):
    """One row per entry of ``rows`` (label → one map per column) over ``image`` (or ``images[r]``
    for row r); a ``None`` map shows the image alone. Each row has one colour map, by its sign
    (``signed[label]``, default from the data), and a colour bar. ``notes``/``outlines``: per row,
    one text/mask (or None) per column.

    Returns:
        ``(figure, values)``: the figure and its plotted values (:func:`map_values`).
    """
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(columns)
    if images is not None and len(images) != n_rows:
        raise ValueError(f"images: {len(images)} images for {n_rows} rows")
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 1.1, cell * n_rows + (0.45 if suptitle else 0.2)),
                             squeeze=False, layout="constrained")
    for r, (label, maps) in enumerate(rows.items()):
        if len(maps) != n_cols:
            raise ValueError(f"rows[{label!r}]: {len(maps)} maps for {n_cols} columns")
        picture = image if images is None else images[r]
        row_signed = (signed or {}).get(label, is_signed(list(maps)))
        shown = None
        for c, heat in enumerate(maps):
            ax = axes[r, c]
            title = columns[c] if r == 0 and columns[c] else None
            if heat is None:
                ax.imshow(picture)
                _bare(ax)
                if title:
                    ax.set_title(title, fontsize=8)
                continue
            shown = show_map(ax, picture, heat, signed=row_signed, title=title, mark_max=mark_max,
                             note=(notes or {}).get(label, [None] * n_cols)[c],
                             outline=(outlines or {}).get(label, [None] * n_cols)[c])
        axes[r, 0].set_ylabel(label, fontsize=8)
        if shown is not None:
            bar = fig.colorbar(shown, ax=list(axes[r]), shrink=0.85, pad=0.01, aspect=12)
            bar.ax.tick_params(labelsize=6)
            bar.set_label(colorbar_label if not row_signed else colorbar_label + " (signed)", fontsize=6)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig, map_values(rows, columns)


def _frame(data):
    import pandas as pd

    return data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))


def lines_with_bands(ax, data, *, x: str, y: str = "value", hue: str | None = None, low: str = "ci_low",
                     high: str = "ci_high", order: Sequence | None = None, palette=None,
                     xlabel: str | None = None, ylabel: str | None = None) -> None:
    """A seaborn line (with markers) per ``hue`` through ``data`` (rows or a DataFrame with x, y,
    hue and, for the interval band, ``low``/``high``; without those columns no band is drawn).
    Categorical ``x`` values keep the order they first appear in (or ``order``)."""
    import seaborn as sns

    frame = _frame(data)
    order = list(order) if order is not None else list(dict.fromkeys(frame[x]))
    frame["_pos"] = frame[x].map({v: i for i, v in enumerate(order)})
    groups = list(dict.fromkeys(frame[hue])) if hue else [None]
    palette_ = dict(zip(groups, sns.color_palette(palette, len(groups))))
    sns.lineplot(data=frame, x="_pos", y=y, hue=hue, hue_order=groups if hue else None,
                 palette=palette_ if hue else None, color=None if hue else palette_[None], marker="o",
                 errorbar=None, ax=ax, legend="auto" if hue else False)
    if low in frame and high in frame:
        for group in groups:
            part = frame if group is None else frame[frame[hue] == group]
            ax.fill_between(part["_pos"], part[low], part[high], alpha=0.2, linewidth=0, color=palette_[group])
    ax.set_xticks(range(len(order)), [str(v) for v in order])
    ax.set_xlabel(xlabel if xlabel is not None else x)
    ax.set_ylabel(ylabel if ylabel is not None else y)


def bars_with_intervals(ax, data, *, x: str, y: str = "value", hue: str | None = None, low: str = "ci_low",
                        high: str = "ci_high", xlabel: str | None = None, ylabel: str | None = None) -> None:
    """Seaborn bars of ``y`` per ``x`` (and ``hue``) with each bar's interval [low, high] as an error bar."""
    import seaborn as sns

    frame = _frame(data)
    sns.barplot(data=frame, x=x, y=y, hue=hue, errorbar=None, ax=ax)
    groups = list(dict.fromkeys(frame[hue])) if hue else [None]
    for container, group in zip(ax.containers, groups):
        part = frame if group is None else frame[frame[hue] == group]
        centres = [p.get_x() + p.get_width() / 2 for p in container.patches]
        values = part[y].to_numpy()
        ax.errorbar(centres, values, yerr=[values - part[low].to_numpy(), part[high].to_numpy() - values],
                    fmt="none", ecolor="black", elinewidth=0.9, capsize=2)
    ax.set_xlabel(xlabel if xlabel is not None else x)
    ax.set_ylabel(ylabel if ylabel is not None else y)
