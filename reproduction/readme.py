"""Rewrite README.md's generated sections from the outputs of ``make figures`` (mini profile).

The README's claims table, its numbers (pointing game, mini models, captioner) and its gallery are
never typed: each lives between two markers::

    <!-- BEGIN GENERATED claims: python -m reproduction.readme -->
    ...
    <!-- END GENERATED claims -->

and this module rebuilds it from ``figures/`` (the verdict tables ``verdicts_<NN>.csv``, the
paper's tables, the figures) and from the shipped weights' manifests (``reproduction/weights/*.json``).
Everything outside the markers is left as written. ``make figures`` runs it after the notebooks;
``python -m reproduction.readme --check`` only reports whether the README is up to date (exit status 1
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

from reproduction import verdicts
from reproduction.report import markdown_cell as cell  # text for a Markdown table cell
from reproduction.storage import project_path
from revisal.files import atomic_write


#: Every output of the notebooks, in the README's order: (notebook, file in figures/, what it is).
def gallery_entries() -> list[tuple[str, str, str]]:
    """(notebook, file pattern, caption) of every output a study shows in the gallery, in the
    studies' order (:mod:`reproduction.studies`)."""
    from reproduction.studies import studies

    return [(study.notebook, out.file, out.caption) for study in studies().values() for out in study.outputs
            if out.caption]

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


def provenance_line(figures: Path) -> str:
    """Which commit the committed figures come from (``figures/MANIFEST.json``), on what, how long."""
    path = _require(figures / "MANIFEST.json", "the figures' manifest (make figures writes it)")
    data = json.loads(path.read_text())
    commits = data.get("commits") or ["unknown"]
    outputs = data.get("outputs", {}).values()
    devices = sorted({o.get("device") for o in outputs if o.get("device")})
    wall = sum(v for v in data.get("notebooks_wall_s", {}).values() if v)
    tree = "a tree with uncommitted changes" if data.get("dirty") else "a clean tree"
    device = ", ".join(devices) or "an unknown device"
    notebooks = len(data.get("notebooks_wall_s", {}))
    return (f"Figures: made at commit `{', '.join(c[:12] for c in commits)}` ({tree}) on {device}, {notebooks} "
            f"notebooks in {wall:.0f} s of notebook time. `python -m reproduction.provenance` says whether HEAD's "
            "code is still that commit's; each sidecar, and `figures/MANIFEST.json`, names the notebook cell that "
            "wrote its output.")


def outcome(figures: Path, run: str = "the committed mini-profile run") -> str:
    """One line: how many of the paper's claims ``run`` supports, and how many it does not."""
    rows = [row for _, row in _all_rows(figures)]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in verdicts.VERDICTS}
    parts = ", ".join(f"**{n} {v}**" for v, n in counts.items() if n)
    return (f"Outcome of {run}: {parts} (of {len(rows)} claims; the claims table below "
            "says what each rests on and how to read it).")


def _units(row: dict) -> str:
    n = f"{row.get('n', '')} {row.get('unit', '')}".strip()
    return f"{n} (resampled as {row['clusters']})" if row.get("clusters") else n


#: Words that end in a full stop without ending a sentence ("Fig. 4", "supp. C").
ABBREVIATIONS = frozenset({"Fig", "Figs", "Tab", "Eq", "Sec", "supp", "cf", "e.g", "i.e", "vs", "al", "etc", "No"})
_SIDE = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


def first_sentence(text: str) -> str:
    """The first sentence of ``text``: up to the first ``.``, ``!`` or ``?`` followed by a space and a
    capital letter, not counting a full stop after an abbreviation (:data:`ABBREVIATIONS`) or an initial."""
    text = " ".join(text.split())
    for end in re.finditer(r"[.!?](?= [A-Z])", text):
        word = re.search(r"[\w.]*$", text[:end.start()]).group()
        if end.group() == "." and (word in ABBREVIATIONS or len(word) == 1):
            continue
        return text[:end.end()]
    return text


def reading(row: dict) -> str:
    """The claims table's one-line reading of ``row``: the first sentence of its ``why`` (the notebook's
    "Reading the verdicts" gives the whole of it), or, where the notebook gave none, where the interval
    lies against the claim's bar."""
    if row.get("why"):
        return first_sentence(row["why"])
    side, threshold = _SIDE.get(row["relation"], row["relation"]), number(row["threshold"])
    bar = number(verdicts.boundary(row["threshold"], row["relation"], row["min_effect"]))
    return {
        "supported": f"The whole interval is {side} {bar}.",
        "not supported": f"None of the interval is {side} {threshold}.",
        verdicts.TOO_SMALL: f"Part of the interval is {side} {threshold}, none of it {side} {bar} (the minimum effect).",
    }.get(row["verdict"], f"The interval straddles {bar}, or is not a number.")


def claims(figures: Path, link: Callable[[str, dict], str] | None = None) -> str:
    """Every notebook's verdict table as one table: claim, what it rests on, value [95% CI], test,
    n, verdict and its one-line reading (:func:`reading`). Each numbered notebook must have its
    ``verdicts_<NN>.csv``, with rows. ``link(stem, row)``, when given, writes the notebook column (the
    site links it to the claim's cell)."""
    lines = ["| notebook | claim (paper) | metric | rests on | value [95% CI] | test | n | verdict | reading |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stem, row in _all_rows(figures):
        lines.append(f"| {link(stem, row) if link else f'`{stem}`'} | {cell(row['claim'])} | {cell(row['metric'])} | {cell(row.get('rests_on') or '')} | "
                     f"{number(row['value'])} [{number(row['ci_low'])}, {number(row['ci_high'])}] | "
                     f"{row['relation']} {number(row['threshold'])}{_by(row['min_effect'])} | {cell(_units(row))} | "
                     f"**{row['verdict']}** | {cell(reading(row))} |")
    return "\n".join(lines)


def declared_min_effects(notebook: Path) -> list[tuple[str, float, str]]:
    """(name, default, reason) of each parameter of ``notebook``'s ``parameters`` cell whose comment
    (:func:`reproduction.params.comments`, lines carried over included) starts "minimum effect": the
    reason is the comment after its first colon."""
    from reproduction import params

    defaults = params.declared(notebook)
    found = []
    for name, comment in params.comments(notebook).items():
        if comment.lower().startswith("minimum effect") and ":" in comment:
            try:
                value = float(defaults[name])
            except (ValueError, TypeError):
                continue
            found.append((name, value, comment.split(":", 1)[1].strip()))
    return found


def min_effects(figures: Path) -> str:
    """One line per minimum effect the claims table tests against, with its reason: the comment of
    the notebook parameter that sets it (:func:`declared_min_effects`; the value the run used is in
    the verdict table's sidecar). A minimum effect no documented parameter sets is a ValueError."""
    stems = _notebook_stems(figures)
    used: dict[tuple[str, float, str], dict[str, int]] = {}
    for stem, row in _all_rows(figures):
        if not row["min_effect"]:
            continue
        sidecar = figures / f"verdicts_{stem[:2]}.json"
        ran = json.loads(sidecar.read_text()).get("parameters", {}) if sidecar.is_file() else {}
        params = [(name, float(ran.get(name, default)), reason)
                  for name, default, reason in declared_min_effects(project_path("notebooks") / f"{stems[stem[:2]]}.ipynb")]
        match = [p for p in params if abs(p[1] - row["min_effect"]) <= 1e-12 * max(1.0, abs(p[1]))]
        if not match:
            raise ValueError(f"notebooks/{stem}.ipynb: no parameter whose comment starts 'minimum effect … :' "
                             f"(then its reason) has the value {row['min_effect']:g} of claim {row['claim']!r}; "
                             f"documented: {[(n, v) for n, v, _ in params]}")
        for key in match:
            used.setdefault(key, {}).setdefault(stem[:2], 0)
            used[key][stem[:2]] += 1
    lines = ["**Minimum effects** (the *by ≥* of the test column; each a notebook parameter, with the reason its "
             "comment gives):", ""]
    for (name, value, reason), notebooks in used.items():
        where = ", ".join(notebooks)
        count = sum(notebooks.values())
        lines.append(f"- **≥ {number(value)}**: `{name}` (notebook{'s' if len(notebooks) > 1 else ''} {where}; "
                     f"{count} claim{'s' if count > 1 else ''}): {reason}")
    return "\n".join(lines) if used else "No claim is tested against a minimum effect."


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


def grid_section(figures: Path) -> str:
    """What the grid pointing game on real photos rests on (notebook 02), from its table's sidecar."""
    side = json.loads(_require(figures / "table_grid_pointing.json", "the grid pointing table's sidecar, notebook 02")
                      .read_text())
    photos, mosaics = side.get("photos", []), side.get("mosaics", [])
    return (f"The grid pointing game on EfficientNet-Lite0 rests on **{len(photos)} distinct photos** "
            f"({', '.join(photos)}), recombined into {len(mosaics)} 2×2 mosaics ({side.get('target_cells', 0)} "
            "target cells). This is a small sample: it checks the testbed's pattern on a real network and real "
            "photos; it is not a benchmark (table and figure in the 02 gallery below).")


def models_section() -> str:
    """The mini models' size, training and test mAP, from the shipped weights' manifests."""
    lines = ["| model | architecture | parameters | epochs | train time (2 cores) | test mAP |", "|---|---|---|---|---|---|"]
    for name, arch in MINI_MODELS.items():
        m = json.loads(project_path(f"reproduction/weights/{name}.json").read_text())
        lines.append(f"| `{name}` | {arch} | {m['parameters']:,} | {m['config']['epochs']} | {m['train_seconds']:.0f} s "
                     f"| {m['test_map']:.3f} |")
    return "\n".join(lines)


def table2() -> str:
    """Table 2 from the registry (:data:`revisal.METHODS`): each named method's site, aggregation,
    backward rule and map, so the README never restates it by hand."""
    import revisal

    lines = ["| method | site | aggregation | backward rule | map | from |", "|---|---|---|---|---|---|"]
    for name, m in revisal.METHODS.items():
        formula = m.formula.replace("|", "\\|")
        lines.append(f"| `{name}` | `{m.site.name}` | `{m.aggregation.name}` | `{m.rule.name}` | {formula} | {m.paper} |")
    return "\n".join(lines)


def captioner(figures: Path) -> str:
    """The captioner's size and training (its manifest) and this run's caption quality (notebook 06)."""
    m = json.loads(project_path("reproduction/weights/captioner.json").read_text())
    q = _read_csv(figures / "table_caption_quality.csv")[0]
    return "\n".join([
        f"| parameters | epochs | train time (2 cores) | greedy captions of {int(q['scenes']):,} test scenes: exact match "
        "| word accuracy | BLEU-1 / 2 / 3 / 4 |",
        "|---|---|---|---|---|---|",
        f"| {m['parameters']:,} | {m['config']['epochs']} | {m['train_seconds']:.0f} s | {float(q['exact']):.1f}% "
        f"| {float(q['word_accuracy']):.1f}% | " + " / ".join(f"{float(q[f'bleu{k}']):.1f}" for k in (1, 2, 3, 4)) + " |",
    ])


def gallery(figures: Path, prefix: str = "figures") -> str:
    """Every output a study captions, by notebook: figures embedded, tables inlined. Each must
    match a file with its JSON sidecar (ValueError listing every one that does not)."""
    entries = gallery_entries()
    found = {pattern: sorted(figures.glob(pattern), key=lambda p: [int(t) if t.isdigit() else t
                                                                    for t in re.split(r"(\d+)", p.name)])
             for _, pattern, _ in entries}
    missing = [_missing(path, f"{what}, notebook {notebook}") for notebook, pattern, what in entries
               for path in ([figures / pattern] if not found[pattern] else
                            [p.with_suffix(".json") for p in found[pattern] if not p.with_suffix(".json").is_file()])]
    if missing:
        raise ValueError(f"gallery: {len(missing)} output(s) missing:\n" + "\n".join(f"  - {m}" for m in missing))
    out, current = [], None
    for notebook, pattern, what in entries:
        for path in found[pattern]:
            if notebook != current:
                out.append(f"### {notebook}\n")
                current = notebook
            link = f"{prefix}/{path.name}"
            out.append(f"**{what}** — [`{link}`]({link})\n")
            if path.suffix == ".png":
                out.append(f"[![{what}]({link})]({link})\n")
            else:
                out.append(path.read_text().strip() + "\n")
    return "\n".join(out).rstrip()


SECTIONS: dict[str, Callable[[Path], str]] = {
    "outcome": outcome, "provenance": provenance_line,
    "claims": claims, "pointing": pointing, "models": lambda figures: models_section(), "captioner": captioner,
    "table2": lambda figures: table2(),
    "gallery": gallery, "grid": grid_section, "min_effects": min_effects,
}


# --- the README ---------------------------------------------------------------------------------------------
def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED {name}: python -m reproduction.readme -->", f"<!-- END GENERATED {name} -->"


def render_readme(text: str, figures: str | Path = "figures") -> str:
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
    parser = argparse.ArgumentParser(prog="python -m reproduction.readme", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--figures", default="figures", help="the mini profile's outputs")
    parser.add_argument("--check", action="store_true", help="only check; exit status 1 when out of date")
    args = parser.parse_args(argv)
    path = project_path(args.readme)
    text = path.read_text()
    try:
        new = render_readme(text, args.figures)
    except (OSError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if args.check:
        if new != text:
            parser.exit(1, f"{path}: generated sections are out of date; run python -m reproduction.readme\n")
        return
    if new != text:
        atomic_write(path, new)


if __name__ == "__main__":
    main(sys.argv[1:])
