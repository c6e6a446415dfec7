"""The README's claims, numbers and gallery are generated from figures/, never typed."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from reproduction import provenance, readme, verdicts

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "figures"
NOTEBOOKS = [p.stem[:2] for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def section(text: str, name: str) -> str:
    begin, end = readme._markers(name)
    return text.split(begin)[1].split(end)[0]


def test_the_committed_readme_is_what_the_committed_figures_generate():
    """Fails when a number or the gallery was edited by hand, or figures/ changed without make figures."""
    text = (ROOT / "README.md").read_text()
    assert readme.render_readme(text, FIGURES) == text, "README.md is out of date: run python -m reproduction.readme"


def test_rendering_is_idempotent_and_leaves_the_prose_alone():
    text = (ROOT / "README.md").read_text()
    once = readme.render_readme(text, FIGURES)
    assert readme.render_readme(once, FIGURES) == once
    outside = re.sub(r"<!-- BEGIN GENERATED (\w+).*?<!-- END GENERATED \1 -->", "", once, flags=re.S)
    assert outside == re.sub(r"<!-- BEGIN GENERATED (\w+).*?<!-- END GENERATED \1 -->", "", text, flags=re.S)


def test_readme_claims_match_the_verdict_tables():
    """Each claims row of the README states its verdict table's value, interval, test, units,
    verdict and reading (to the README's rounding); the outcome line counts the verdicts."""
    rows = [r for r in section((ROOT / "README.md").read_text(), "claims").splitlines() if r.startswith("| `")]
    expected = [row for path in sorted(FIGURES.glob("verdicts_*.csv")) for row in verdicts.read(path)]
    assert len(rows) == len(expected) > 0
    for line, row in zip(rows, expected):
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        assert cells[1] == row["claim"] and cells[2] == row["metric"] and cells[3] == (row.get("rests_on") or "")
        value, low, high = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cells[4]).groups())
        for shown, exact in ((value, row["value"]), (low, row["ci_low"]), (high, row["ci_high"])):
            # 1 decimal from 10 up, 2 from 1 up, else 3 significant digits
            assert shown == pytest.approx(exact, abs=0.051 if abs(exact) >= 10 else 0.0051 if abs(exact) >= 1 else
                                          0.0051 * abs(exact) + 1e-12)
        assert cells[5].startswith(row["relation"]) and (" by ≥ " in cells[5]) == (row["min_effect"] > 0)
        assert cells[6].startswith(str(row["n"])) and cells[7] == f"**{row['verdict']}**"
        assert cells[8] == readme.reading(row)
    outcome = section((ROOT / "README.md").read_text(), "outcome")
    for verdict in verdicts.VERDICTS:
        count = sum(row["verdict"] == verdict for row in expected)
        assert (f"**{count} {verdict}**" in outcome) == (count > 0)


def test_every_claim_has_a_one_line_reading():
    """The reading column used to be blank for supported claims and several sentences long for the
    others: now one sentence each, the first of the notebook's reading (whose whole is in the notebook)."""
    rows = [r for r in section((ROOT / "README.md").read_text(), "claims").splitlines() if r.startswith("| `")]
    expected = [row for path in sorted(FIGURES.glob("verdicts_*.csv")) for row in verdicts.read(path)]
    assert len(rows) == len(expected) > 0
    for line, row in zip(rows, expected):
        shown = re.split(r"(?<!\\)\|", line.strip().strip("|"))[8].strip().replace("\\|", "|")
        assert shown and "\n" not in shown and readme.first_sentence(shown) == shown, line
        if row.get("why"):
            assert " ".join(row["why"].split()).startswith(shown) and len(shown) <= len(row["why"])
        else:
            assert shown.startswith(("The whole interval", "None of the interval", "Part of the interval",
                                     "The interval straddles"))
    assert any(len(" ".join(r["why"].split())) > len(readme.reading(r)) for r in expected)  # readings were cut


@pytest.mark.parametrize("text, first", [
    ("One. Two.", "One."),
    ("The direction is Fig. 4's, but few. More here.", "The direction is Fig. 4's, but few."),
    ("The paper (supp. C) never finds it. Next.", "The paper (supp. C) never finds it."),
    ("ρ is -0.22, +0.16 at features.3, features.8. Then.", "ρ is -0.22, +0.16 at features.3, features.8."),
    ("At ε = 0.001; the share is 0.82", "At ε = 0.001; the share is 0.82"),
    ("Several\n  lines. Joined.", "Several lines."),
])
def test_first_sentence(text, first):
    assert readme.first_sentence(text) == first


def test_readme_first_screen_has_the_outcome_the_commands_and_what_the_mini_profile_can_test():
    """The outcome line, the two commands and the can/cannot list come first: within the first 40
    lines, before any image or table (they used to follow Fig. 15 and the 32-row claims table)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    first_big = next(i for i, line in enumerate(lines) if line.startswith(("![", "[![", "|", "<img")))

    def where(predicate) -> int:
        return next(i for i, line in enumerate(lines) if predicate(line))

    found = {
        "outcome": where(lambda line: line.startswith("Outcome of the committed mini-profile run:")),
        "make figures": where(lambda line: line.startswith("make figures ")),
        "make test": where(lambda line: line.startswith("make test ")),
        "can/cannot": where(lambda line: "What the mini profile can and cannot test" in line),
        "can": where(lambda line: line.startswith("- *Can:*")),
        "cannot": where(lambda line: line.startswith("- *Cannot:*")),
    }
    for name, index in found.items():
        assert index < min(first_big, 40), f"{name} is on line {index + 1}; the first image or table on {first_big + 1}"
    assert found["outcome"] < found["make figures"] < found["can/cannot"] < found["can"] < found["cannot"]


def test_every_minimum_effect_is_listed_with_its_reason():
    """The minimum effects' reasons used to live only in the notebooks' parameter comments."""
    text = section((ROOT / "README.md").read_text(), "min_effects")
    listed = re.findall(r"^- \*\*≥ (\S+)\*\*: `(\w+)` \(notebooks? ([\d, ]+); \d+ claims?\): (.+)$", text, flags=re.M)
    used = {(path.stem.split("_")[1], row["min_effect"]) for path in sorted(FIGURES.glob("verdicts_*.csv"))
            for row in verdicts.read(path) if row["min_effect"]}
    assert used
    shown = {(nb, float(value)) for value, _, notebooks, _ in listed for nb in notebooks.split(", ")}
    assert shown == used
    for value, name, notebooks, reason in listed:
        for nb in notebooks.split(", "):
            notebook = next((ROOT / "notebooks").glob(f"{nb}_*.ipynb"))
            assert (name, float(value), reason) in readme.declared_min_effects(notebook)
    assert len(listed) == len({(name, reason) for _, name, _, reason in listed})  # one line each


def test_a_minimum_effect_no_parameter_documents_is_an_error(tmp_path):
    figures = linked_figures(tmp_path)
    path = figures / "verdicts_06.csv"
    rows = list(csv.DictReader(FIGURES.joinpath(path.name).open(newline="")))
    rows[0]["min_effect"] = "0.37"
    path.unlink()
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match="06_captioning.ipynb: no parameter whose comment starts 'minimum effect"):
        readme.min_effects(figures)


def test_readme_numbers_match_the_tables():
    text = (ROOT / "README.md").read_text()
    quality = next(csv.DictReader((FIGURES / "table_caption_quality.csv").open()))
    assert f"| {float(quality['exact']):.1f}% |" in section(text, "captioner")
    table3 = list(csv.DictReader((FIGURES / "table03_pointing_game.csv").open()))
    first = [line for line in section(text, "pointing").splitlines() if line.startswith("| ")][1]
    assert first.startswith(f"| {table3[0]['method']} | {float(table3[0]['mini_vgg all b.s.']):.1f} |")


def test_sections_are_rebuilt_from_a_figures_folder(tmp_path):
    figures = tmp_path / "figures"
    for number in NOTEBOOKS:  # every notebook's verdict table is required
        table = verdicts.VerdictTable(number, resamples=50)
        table.add("a claim", "a metric", lambda a: a.mean(), [1.0, 1.0, 1.0], threshold=0.5, relation=">",
                  unit="images")
        table.save(out_dir=figures, profile="mini", parameters={})
    provenance.write_manifest(figures)
    text = "intro\n" + "\n".join("\n".join(readme._markers(n)) for n in ("outcome", "provenance", "claims")) + "\noutro\n"
    out = "\n".join([text])
    built = readme.claims(figures)
    assert "| `05_weight_randomization` | a claim | a metric |  | 1.00 [1.00, 1.00] | > 0.5 | 3 images | **supported** | The whole interval is above 0.5. |" \
        in built
    assert readme.outcome(figures).startswith(f"Outcome of the committed mini-profile run: **{len(NOTEBOOKS)} supported** (of")
    assert readme.provenance_line(figures).startswith("Figures: made at commit `")
    with pytest.raises(ValueError, match="expected one .* pair for the pointing section"):
        readme.render_readme(out, figures)


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


def linked_figures(tmp_path: Path) -> Path:
    """A copy of figures/ made of symbolic links (cheap), for a test to remove or replace files in."""
    out = tmp_path / "figures"
    out.mkdir()
    for path in FIGURES.iterdir():
        (out / path.name).symlink_to(path)
    return out


def check_fails_naming(tmp_path: Path, figures: Path, *names: str) -> str:
    """``python -m reproduction.readme --check`` fails (exit 2) and names each file; render raises the same."""
    readme_path = tmp_path / "README.md"
    readme_path.write_text((ROOT / "README.md").read_text())
    with pytest.raises(SystemExit) as e:
        readme.main(["--readme", str(readme_path), "--figures", str(figures), "--check"])
    assert e.value.code == 2
    with pytest.raises(ValueError) as error:
        readme.render_readme(readme_path.read_text(), figures)
    for name in names:
        assert str(figures / name) in str(error.value)
    assert readme_path.read_text() == (ROOT / "README.md").read_text()  # nothing rewritten
    return str(error.value)


def test_the_committed_figures_pass_check():
    readme.main(["--readme", str(ROOT / "README.md"), "--figures", str(FIGURES), "--check"])


@pytest.mark.parametrize("number", ["00", "03", "06"])
@pytest.mark.parametrize("damage, expected", [
    ("missing", "missing (the verdict table of notebook"),
    ("empty", "empty; expected a verdict table with columns"),
    ("header only", "no claim rows"),
    ("no verdict column", "no column(s) ['verdict']"),
])
def test_a_missing_or_empty_verdict_table_is_an_error_naming_it(tmp_path, number, damage, expected):
    """Its claim rows used to be dropped from the README's claims table without a word."""
    figures = linked_figures(tmp_path)
    path = figures / f"verdicts_{number}.csv"
    header = FIGURES.joinpath(path.name).read_text().splitlines()[0]
    path.unlink()
    if damage == "empty":
        path.write_text("")
    elif damage == "header only":
        path.write_text(header + "\n")
    elif damage == "no verdict column":
        rows = FIGURES.joinpath(path.name).read_text().replace(",verdict", ",outcome", 1)
        assert rows != FIGURES.joinpath(path.name).read_text()
        path.write_text(rows)
    assert expected in check_fails_naming(tmp_path, figures, path.name)


def test_a_verdict_table_of_no_notebook_is_refused(tmp_path):
    figures = linked_figures(tmp_path)
    (figures / "verdicts_09.csv").symlink_to(FIGURES / "verdicts_00.csv")
    assert "no notebook '09' writes it" in check_fails_naming(tmp_path, figures, "verdicts_09.csv")


@pytest.mark.parametrize("removed", [
    ["fig04_gradcam_by_depth.png"],  # a figure
    ["table_grid_photos.md"],  # a table shown inline
    ["fig13_randomization_examples_*.png"],  # every file of a numbered series
    ["fig02_layer_combination.png", "fig14_captioning.png", "table_caption_mass.md"],  # all listed at once
])
def test_a_missing_gallery_output_is_an_error_naming_it(tmp_path, removed):
    """A missing figure used to be dropped from the gallery without a word."""
    figures = linked_figures(tmp_path)
    for pattern in removed:
        matched = list(figures.glob(pattern))
        assert matched
        for path in matched:
            path.unlink()
    message = check_fails_naming(tmp_path, figures, *removed)
    assert f"{len(removed)} output(s) missing" in message


@pytest.mark.parametrize("name", ["table03_pointing_game.json", "table_grid_pointing.json",
                                  "table_caption_quality.csv"])
def test_every_generated_section_names_a_missing_input(tmp_path, name):
    """The grid note used to print a placeholder when its sidecar was missing."""
    figures = linked_figures(tmp_path)
    (figures / name).unlink()
    assert "missing" in check_fails_naming(tmp_path, figures, name)
