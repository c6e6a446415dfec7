"""Rewrite README.md's generated sections from the outputs of ``make figures`` (mini profile).

The README's claims table, its numbers (pointing game, mini models, captioner) and its gallery are
never typed: each lives between two markers::

    <!-- BEGIN GENERATED claims: python -m revisal.readme -->
    ...
    <!-- END GENERATED claims -->

and this module rebuilds it from ``figures/`` (the verdict tables ``verdicts_<NN>.csv``, the
paper's tables, the figures) and from the shipped weights' manifests (``revisal/weights/*.json``).
Everything outside the markers is left as written. ``make figures`` runs it after the notebooks;
``python -m revisal.readme --check`` only reports whether the README is up to date (exit status 1
when not). Nothing is dropped silently: a missing or empty verdict table, a missing gallery output
or a missing table is an error naming the file (exit status 2, with or without ``--check``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Callable

from . import verdicts
from .files import atomic_write, project_path

#: Every output of the notebooks, in the README's order: (notebook, file in figures/, what it is).
GALLERY = [
    ("00_extract_aggregate", "table02_methods.md", "Table 2 (printed from the registry)"),
    ("00_extract_aggregate", "fig15_methods_by_depth.png", "Fig. 15: gradient, linear approx., NormGrad, selective NormGrad at 5 depths"),
    ("00_extract_aggregate", "fig04_gradcam_by_depth.png", "Fig. 4: Grad-CAM by depth, for each object's class"),
    ("00_extract_aggregate", "fig04b_selectivity_by_depth.png", "not in the paper: class selectivity by depth on two-photo images"),
    ("01_identity_trick", "table04_identity_trick.md", "Table 4: virtual 1×1 identity vs the real conv"),
    ("01_identity_trick", "fig_identity_trick.png", "not in the paper: each image's identity-trick correlation by layer"),
    ("02_layer_combination", "table05_best_layer.md", "Table 5: best single layer"),
    ("02_layer_combination", "table06_weighting_gains.md", "Table 6: gain of each weighting over the best single layer"),
    ("02_layer_combination", "fig02_layer_combination.png", "Fig. 2: per-layer maps and their combination"),
    ("02_layer_combination", "fig03_pointing_by_depth.png", "Fig. 3: pointing accuracy by depth"),
    ("02_layer_combination", "fig09_layer_weights.png", "Fig. 9: layer weights"),
    ("02_layer_combination", "table_grid_photos.md", "not in the paper: the offline photos, kept when EfficientNet-Lite0 is confident"),
    ("02_layer_combination", "table_grid_pointing.md", "not in the paper: grid pointing game (Böhle et al. 2022) beside the testbed"),
    ("02_layer_combination", "fig_grid_pointing.png", "not in the paper: grid pointing game hit rates"),
    ("02_layer_combination", "fig_grid_pointing_examples.png", "not in the paper: one mosaic, each cell's class"),
    ("03_class_sensitivity", "fig06_class_sensitivity.png", "Fig. 6: class sensitivity by depth"),
    ("03_class_sensitivity", "fig05_class_sensitivity_examples.png", "Fig. 5: maps for the ground-truth, max and min class"),
    ("03_class_sensitivity", "table_meta_epsilon.md", "not in the paper: how far one meta step of size ε moves the maps of Fig. 5"),
    ("04_meta_saliency", "fig07_meta_class_sensitivity.png", "Fig. 7: class sensitivity with meta-saliency"),
    ("04_meta_saliency", "fig10_meta_dynamics.png", "Fig. 10: meta vs plain maps over training"),
    ("04_meta_saliency", "fig11_meta_stabilisation.png", "Fig. 11: stabilisation over training"),
    ("04_meta_saliency", "fig12_meta_examples.png", "Fig. 12: negative, plain and positive meta-saliency"),
    ("05_weight_randomization", "fig08b_randomization_curves.png", "Fig. 8 as curves (Adebayo et al.'s presentation)"),
    ("05_weight_randomization", "fig08_randomization.png", "Fig. 8: cascading randomisation"),
    ("05_weight_randomization", "fig13_randomization_examples_*.png", "Fig. 13: more randomisation examples"),
    ("06_captioning", "table_caption_quality.md", "supp. F: captioner quality (the paper reports none)"),
    ("06_captioning", "fig14_captioning.png", "Fig. 14: captioning explanations"),
    ("06_captioning", "fig14b_caption_words.png", "not in the paper: one map per word"),
    ("06_captioning", "table_caption_mass.md", "not in the paper: mass on named vs unnamed objects"),
]

MINI_MODELS = {
    "mini_vgg": "conv/ReLU/max-pool stack, 16-32-64-128, 2 convs per stage, FC head",
    "mini_resnet": "BN, one basic block per `layer1..layer4`, global average pooling",
}
ARCH_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50"}


# --- formatting ---------------------------------------------------------------------------------------------
def number(value: float) -> str:
    """How the README prints a statistic: 1 decimal from 10 up, 2 from 1 up, else 3 significant
    digits (``nan`` for NaN)."""
    if value != value:
        return "nan"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return str(text).replace("|", "\\|")


def _missing(path: Path, what: str) -> str:
    return f"{path}: missing ({what}); run make figures"


def _require(path: Path, what: str) -> Path:
    """``path``, or a ValueError naming it: a generated section never drops what it cannot find."""
    if not path.is_file():
        raise ValueError(_missing(path, what))
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with _require(path, "a table make figures writes").open(newline="") as f:
        return list(csv.DictReader(f))


def _notebook_stems(figures: Path) -> dict[str, str]:
    stems = {}
    for path in sorted(project_path("notebooks").glob("[0-9][0-9]_*.ipynb")):
        stems[path.stem[:2]] = path.stem
    return stems


# --- sections ---------------------------------------------------------------------------------------------------
#: The columns of a verdict table (``verdicts_<NN>.csv``) the claims table shows.
VERDICT_COLUMNS = ("claim", "metric", "value", "ci_low", "ci_high", "relation", "threshold", "verdict")


def _verdict_rows(path: Path, notebook: str) -> list[dict]:
    """The rows of ``path``, notebook ``notebook``'s verdict table; a missing or empty table, or one
    without the claims table's columns, is a ValueError naming the file (never rows dropped)."""
    _require(path, f"the verdict table of notebook {notebook}")
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    absent = [c for c in VERDICT_COLUMNS if c not in header]
    if absent:
        raise ValueError(f"{path}: {'empty' if not header else f'no column(s) {absent}'}; expected a verdict table "
                         f"with columns {list(VERDICT_COLUMNS)} (re-run notebook {notebook})")
    try:
        rows = verdicts.read(path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if not rows:
        raise ValueError(f"{path}: no claim rows; every notebook's verdict table has at least one (re-run notebook "
                         f"{notebook})")
    return rows


def _by(min_effect: float) -> str:
    return f" by ≥ {number(min_effect)}" if min_effect else ""


def _all_rows(figures: Path) -> list[tuple[str, dict]]:
    """(notebook stem, row) of every verdict table, in notebook order."""
    stems = _notebook_stems(figures)
    extra = sorted(p for p in figures.glob("verdicts_*.csv") if p.stem.split("_", 1)[1] not in stems)
    if extra:
        raise ValueError(f"{extra[0]}: no notebook {extra[0].stem.split('_', 1)[1]!r} writes it; notebooks: "
                         f"{sorted(stems.values())}")
    return [(stem, row) for number_, stem in sorted(stems.items())
            for row in _verdict_rows(figures / f"verdicts_{number_}.csv", stem)]


def outcome(figures: Path) -> str:
    """One line: how many of the paper's claims this run supports, and how many it does not."""
    rows = [row for _, row in _all_rows(figures)]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in verdicts.VERDICTS}
    parts = ", ".join(f"**{n} {v}**" for v, n in counts.items() if n)
    return (f"Outcome of the committed mini-profile run: {parts} (of {len(rows)} claims; the claims table below "
            "says what each rests on and how to read it).")


def _units(row: dict) -> str:
    n = f"{row.get('n', '')} {row.get('unit', '')}".strip()
    return f"{n} (resampled as {row['clusters']})" if row.get("clusters") else n


def claims(figures: Path) -> str:
    """Every notebook's verdict table as one table: claim, what it rests on, value [95% CI], test,
    n, verdict and its reading. Each numbered notebook must have its ``verdicts_<NN>.csv``, with rows."""
    lines = ["| notebook | claim (paper) | metric | rests on | value [95% CI] | test | n | verdict | reading |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stem, row in _all_rows(figures):
        lines.append(f"| `{stem}` | {cell(row['claim'])} | {cell(row['metric'])} | {cell(row.get('rests_on') or '')} | "
                     f"{number(row['value'])} [{number(row['ci_low'])}, {number(row['ci_high'])}] | "
                     f"{row['relation']} {number(row['threshold'])}{_by(row['min_effect'])} | {cell(_units(row))} | "
                     f"**{row['verdict']}** | {cell(row.get('why') or '')} |")
    return "\n".join(lines)


def pointing(figures: Path) -> str:
    """The pointing game, all pairs: this run's models beside the paper's Table 3."""
    rows = _read_csv(figures / "table03_pointing_game.csv")
    side = json.loads(_require(figures / "table03_pointing_game.json", "table 3's sidecar").read_text())
    models = [c[: -len(" all b.s.")] for c in rows[0] if c.endswith(" all b.s.") and not c.startswith("paper ")]
    header, keys = ["method"], []
    for model in models:
        arch = next((c.split()[1] for c in rows[0] if c.startswith("paper ") and c.endswith(" all b.s.")
                     and list(rows[0]).index(c) > list(rows[0]).index(f"{model} all b.s.")), "")
        header += [f"{model} b.s.", f"{model} b.w.", f"paper {ARCH_NAMES.get(arch, arch)} b.s.",
                   f"paper {ARCH_NAMES.get(arch, arch)} b.w."]
        keys += [f"{model} all b.s.", f"{model} all b.w.", f"paper {arch} all b.s.", f"paper {arch} all b.w."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([row["method"]] + [f"{float(row[k]):.1f}" for k in keys]) + " |" for row in rows]
    pairs = side.get("pairs", {})
    counted = ", ".join(f"{m}: {n:,} image-class pairs" for m, n in pairs.items())
    note = f"This run: {counted}." if counted else ""
    return "\n".join(lines) + ("\n\n" + note if note else "")


def grid(figures: Path) -> str:
    """What the grid pointing game on real photos rests on (notebook 02), from its table's sidecar."""
    side = json.loads(_require(figures / "table_grid_pointing.json", "the grid pointing table's sidecar, notebook 02")
                      .read_text())
    photos, mosaics = side.get("photos", []), side.get("mosaics", [])
    return (f"The grid pointing game on EfficientNet-Lite0 rests on **{len(photos)} distinct photos** "
            f"({', '.join(photos)}), recombined into {len(mosaics)} 2×2 mosaics ({side.get('target_cells', 0)} "
            "target cells). This is a small sample: it checks the testbed's pattern on a real network and real "
            "photos; it is not a benchmark (table and figure in the 02 gallery below).")


def models() -> str:
    """The mini models' size, training and test mAP, from the shipped weights' manifests."""
    lines = ["| model | architecture | parameters | epochs | train time (2 cores) | test mAP |", "|---|---|---|---|---|---|"]
    for name, arch in MINI_MODELS.items():
        m = json.loads(project_path(f"revisal/weights/{name}.json").read_text())
        lines.append(f"| `{name}` | {arch} | {m['parameters']:,} | {m['config']['epochs']} | {m['train_seconds']:.0f} s "
                     f"| {m['test_map']:.3f} |")
    return "\n".join(lines)


def captioner(figures: Path) -> str:
    """The captioner's size and training (its manifest) and this run's caption quality (notebook 06)."""
    m = json.loads(project_path("revisal/weights/captioner.json").read_text())
    q = _read_csv(figures / "table_caption_quality.csv")[0]
    return "\n".join([
        f"| parameters | epochs | train time (2 cores) | greedy captions of {int(q['scenes']):,} test scenes: exact match "
        "| word accuracy | BLEU-1 / 2 / 3 / 4 |",
        "|---|---|---|---|---|---|",
        f"| {m['parameters']:,} | {m['config']['epochs']} | {m['train_seconds']:.0f} s | {float(q['exact']):.1f}% "
        f"| {float(q['word_accuracy']):.1f}% | " + " / ".join(f"{float(q[f'bleu{k}']):.1f}" for k in (1, 2, 3, 4)) + " |",
    ])


def gallery(figures: Path, prefix: str = "figures") -> str:
    """Every output, by notebook: figures embedded, tables inlined. Every :data:`GALLERY` entry
    must match a file (ValueError listing every one that does not)."""
    found = {pattern: sorted(figures.glob(pattern), key=lambda p: [int(t) if t.isdigit() else t
                                                                    for t in re.split(r"(\d+)", p.name)])
             for _, pattern, _ in GALLERY}
    missing = [_missing(figures / pattern, f"{what}, notebook {notebook}") for notebook, pattern, what in GALLERY
               if not found[pattern]]
    if missing:
        raise ValueError(f"gallery: {len(missing)} output(s) missing:\n" + "\n".join(f"  - {m}" for m in missing))
    out, current = [], None
    for notebook, pattern, what in GALLERY:
        for path in found[pattern]:
            if notebook != current:
                out.append(f"### {notebook}\n")
                current = notebook
            link = f"{prefix}/{path.name}"
            out.append(f"**{what}** — [`{link}`]({link})\n")
            if path.suffix == ".png":
                out.append(f"![{what}]({link})\n")
            else:
                out.append(path.read_text().strip() + "\n")
    return "\n".join(out).rstrip()


SECTIONS: dict[str, Callable[[Path], str]] = {
    "outcome": outcome, "claims": claims, "pointing": pointing, "models": lambda figures: models(), "captioner": captioner,
    "gallery": gallery, "grid": grid,
}


# --- the README ---------------------------------------------------------------------------------------------
def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED {name}: python -m revisal.readme -->", f"<!-- END GENERATED {name} -->"


def render(text: str, figures: str | Path = "figures") -> str:
    """``text`` with every generated section rebuilt from ``figures`` (a section whose markers are
    missing is an error)."""
    figures = project_path(figures)
    for name, build in SECTIONS.items():
        begin, end = _markers(name)
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
            raise ValueError(f"README: expected one '{begin}' … '{end}' pair for the {name} section")
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        text = f"{head}{begin}\n{build(figures)}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m revisal.readme", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--figures", default="figures", help="the mini profile's outputs")
    parser.add_argument("--check", action="store_true", help="only check; exit status 1 when out of date")
    args = parser.parse_args(argv)
    path = project_path(args.readme)
    text = path.read_text()
    try:
        new = render(text, args.figures)
    except (OSError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if args.check:
        if new != text:
            parser.exit(1, f"{path}: generated sections are out of date; run python -m revisal.readme\n")
        return
    if new != text:
        atomic_write(path, new)


if __name__ == "__main__":
    main(sys.argv[1:])
