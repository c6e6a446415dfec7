"""The notebooks' figures: grids of saliency maps (each panel drawn by :func:`revisal.plotting.show_map`)
with their plotted values for the CSV beside each figure, statistical charts (seaborn: lines with
bootstrap-interval bands, bars with interval error bars; intervals from :mod:`reproduction.verdicts`)
and the figures' common style."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from revisal.plotting import DPI, _array, _bare, is_signed, show_map


def style() -> None:
    """The notebooks' look: seaborn's ``ticks`` theme, a readable font size, figures at :data:`DPI`."""
    import matplotlib
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", font_scale=0.8)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": DPI, "axes.titlesize": 9,
                                "image.interpolation": "nearest"})


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
         signed: Mapping[str, bool | Sequence[bool]] | None = None,
         notes: Mapping[str, Sequence[str | None]] | None = None,
         outlines: Mapping[str, Sequence[np.ndarray | None]] | None = None, mark_max: bool = False,
         colorbar_label: str = "map / max |map|"):
    """One row per entry of ``rows`` (label → one map per column) over ``image`` (or ``images[r]``
    for row r); a ``None`` map shows the image alone. Each row has one colour map, by its sign
    (``signed[label]``, default from the data), and a colour bar; ``signed[label]`` may also give one
    flag per column (a min-max normalised combination beside signed layer maps), and the colour bar
    then follows the row's first panel. ``notes``/``outlines``: per row, one text/mask (or None) per
    column.

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
        given = (signed or {}).get(label, None)
        per_panel = list(given) if isinstance(given, (list, tuple)) else [is_signed(list(maps)) if given is None
                                                                          else given] * n_cols
        if len(per_panel) != n_cols:
            raise ValueError(f"signed[{label!r}]: {len(per_panel)} flags for {n_cols} columns")
        row_signed = per_panel[0]
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
            drawn = show_map(ax, picture, heat, signed=per_panel[c], title=title, mark_max=mark_max,
                             note=(notes or {}).get(label, [None] * n_cols)[c],
                             outline=(outlines or {}).get(label, [None] * n_cols)[c])
            if drawn is not None and (shown is None or per_panel[c] == row_signed):
                shown = drawn
        axes[r, 0].set_ylabel(label, fontsize=8)
        if shown is not None:
            bar = fig.colorbar(shown, ax=list(axes[r]), shrink=0.85, pad=0.01, aspect=12)
            bar.ax.tick_params(labelsize=6)
            bar.set_label(colorbar_label if not row_signed else colorbar_label + " (signed)", fontsize=6)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig, map_values(rows, columns)
