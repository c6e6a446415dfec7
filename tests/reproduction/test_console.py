"""One console entry point: ``revisal <command>`` runs the library's ``explain`` and the
subcommands the reproduction declares under the ``revisal.commands`` entry points, and the
Makefile's outputs come from the studies' declarations."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from revisal.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_reproductions_commands_run_through_revisal(capsys):
    assert main(["studies", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("explain", "run", "train", "train-captioner", "params", "readme", "download", "studies"):
        assert re.search(rf"^\s+{re.escape(command)}\s", out, flags=re.M), command


def test_an_unknown_command_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["trian"])
    assert exit_.value.code == 2 and "invalid choice: 'trian'" in capsys.readouterr().err


def test_the_makefile_outputs_are_the_studies_declarations():
    """build/studies.mk, what `make` checks each notebook wrote, is generated from reproduction/studies;
    every output on disk under figures/ is declared by one study (none is hand-listed)."""
    from reproduction.studies import make_rules, studies

    rules = dict(line.split(" := ") for line in make_rules().splitlines() if not line.startswith("#"))
    assert list(rules) == [f"OUT_{n}" for n in studies()]
    declared = {o.file for s in studies().values() for o in s.all_outputs}
    for number, study in studies().items():
        assert rules[f"OUT_{number}"].split() == [o.file for o in study.all_outputs if not o.name.endswith("*")]
    makefile = (ROOT / "Makefile").read_text()
    assert "include build/studies.mk" in makefile and not re.search(r"^OUT_\d\d :?=", makefile, flags=re.M)
    on_disk = {p.name for p in (ROOT / "figures").glob("*.png")} | {p.name for p in (ROOT / "figures").glob("*.md")}
    import fnmatch

    undeclared = sorted(f for f in on_disk if not any(fnmatch.fnmatch(f, d) for d in declared))
    assert not undeclared, f"outputs no study declares: {undeclared}"
    run = subprocess.run(["make", "-n", "figures"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
