"""The README's claims, numbers and gallery are generated from figures/, never typed."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from revisal import readme, verdicts

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"


def section(text: str, name: str) -> str:
    begin, end = readme._markers(name)
    return text.split(begin)[1].split(end)[0]


def test_the_committed_readme_is_what_the_committed_figures_generate():
    """Fails when a number or the gallery was edited by hand, or figures/ changed without make figures."""
    text = (ROOT / "README.md").read_text()
    assert readme.render(text, FIGURES) == text, "README.md is out of date: run python -m revisal.readme"


def test_rendering_is_idempotent_and_leaves_the_prose_alone():
    text = (ROOT / "README.md").read_text()
    once = readme.render(text, FIGURES)
    assert readme.render(once, FIGURES) == once
    outside = re.sub(r"<!-- BEGIN GENERATED (\w+).*?<!-- END GENERATED \1 -->", "", once, flags=re.S)
    assert outside == re.sub(r"<!-- BEGIN GENERATED (\w+).*?<!-- END GENERATED \1 -->", "", text, flags=re.S)


def test_readme_claims_match_the_verdict_tables():
    """Each claims row of the README states its verdict table's value, interval and verdict (to the
    README's rounding)."""
    rows = [r for r in section((ROOT / "README.md").read_text(), "claims").splitlines() if r.startswith("| `")]
    expected = [row for path in sorted(FIGURES.glob("verdicts_*.csv")) for row in verdicts.read(path)]
    assert len(rows) == len(expected) > 0
    for line, row in zip(rows, expected):
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        assert cells[1] == row["claim"] and cells[2] == row["metric"]
        value, low, high = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cells[3]).groups())
        for shown, exact in ((value, row["value"]), (low, row["ci_low"]), (high, row["ci_high"])):
            # 1 decimal from 10 up, 2 from 1 up, else 3 significant digits
            assert shown == pytest.approx(exact, abs=0.051 if abs(exact) >= 10 else 0.0051 if abs(exact) >= 1 else
                                          0.0051 * abs(exact) + 1e-12)
        assert cells[5] == f"**{row['verdict']}**"


def test_readme_numbers_match_the_tables():
    text = (ROOT / "README.md").read_text()
    quality = next(csv.DictReader((FIGURES / "table_caption_quality.csv").open()))
    assert f"| {float(quality['exact']):.1f}% |" in section(text, "captioner")
    table3 = list(csv.DictReader((FIGURES / "table03_pointing_game.csv").open()))
    first = [line for line in section(text, "pointing").splitlines() if line.startswith("| ")][1]
    assert first.startswith(f"| {table3[0]['method']} | {float(table3[0]['mini_vgg all b.s.']):.1f} |")


def test_sections_are_rebuilt_from_a_figures_folder(tmp_path):
    figures = tmp_path / "figures"
    table = verdicts.VerdictTable("05", resamples=50)
    table.add("a claim", "a metric", lambda a: a.mean(), [1.0, 1.0, 1.0], threshold=0.5, relation=">", unit="images")
    table.save(out_dir=figures, profile="mini", parameters={})
    text = "intro\n" + "\n".join("\n".join(readme._markers(n)) for n in ("claims",)) + "\noutro\n"
    out = "\n".join([text])
    built = readme.claims(figures)
    assert "| `05_weight_randomization` | a claim | a metric | 1.00 [1.00, 1.00] | > 0.5 | **supported** |" in built
    with pytest.raises(ValueError, match="expected one .* pair for the pointing section"):
        readme.render(out, figures)


def test_check_mode_reports_an_out_of_date_readme(tmp_path):
    stale = (ROOT / "README.md").read_text().replace("**supported**", "**not supported**", 1)
    if stale == (ROOT / "README.md").read_text():
        stale = stale.replace("**inconclusive**", "**supported**", 1)
    path = tmp_path / "README.md"
    path.write_text(stale)
    with pytest.raises(SystemExit) as e:
        readme.main(["--readme", str(path), "--figures", str(FIGURES), "--check"])
    assert e.value.code == 1
    readme.main(["--readme", str(path), "--figures", str(FIGURES)])
    assert path.read_text() == (ROOT / "README.md").read_text()
