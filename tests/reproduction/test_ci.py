"""The test suite's own guarantees: a missing test oracle fails a CI run (and only skips elsewhere),
the oracles are the declared test extra, and the install split (`make figures` installs the runtime
only, `make test` adds the test extras, every pip call pinned) holds, also in environment.yml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from oracle_imports import ORACLES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

TESTS = Path(__file__).resolve().parents[1]  # tests/: the helpers, then library/ and reproduction/
ROOT = TESTS.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


# --- a missing oracle ------------------------------------------------------------------------------
PROBE_TESTS = {
    # captum is blocked: importing it raises ImportError, as when it is not installed
    "test_in_a_test.py": """
        import sys, types
        import pytest
        sys.modules["captum"] = None
        sys.modules["nltk"] = types.ModuleType("nltk")  # present
        sys.path.insert(0, {tests!r})
        from oracle_imports import oracle

        def test_missing():
            oracle("captum.attr")

        def test_present():
            assert oracle("nltk") is sys.modules["nltk"]

        def test_undeclared():
            with pytest.raises(ValueError, match="not a declared test oracle"):
                oracle("numpy")
        """,
    "test_at_module_level.py": """
        import sys
        sys.modules["torchray"] = None
        sys.path.insert(0, {tests!r})
        from oracle_imports import oracle

        tr = oracle("torchray.attribution")

        def test_never_collected():
            pass
        """,
}


def run_probe(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    for name, text in PROBE_TESTS.items():
        (tmp_path / name).write_text(textwrap.dedent(text.format(tests=str(TESTS))))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's settings
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--continue-on-collection-errors",
         *PROBE_TESTS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    return out.returncode, out.stdout + out.stderr


def test_missing_oracle_skips_outside_ci(tmp_path):
    code, out = run_probe(tmp_path, ci=None)
    assert code == 0, out
    assert re.search(r"SKIPPED \[1\] .*: test oracle 'captum.attr' cannot be imported", out), out
    assert re.search(r"SKIPPED \[1\] .*: test oracle 'torchray.attribution' cannot be imported", out), out
    assert "2 passed, 2 skipped" in out, out
    assert "PASSED test_in_a_test.py::test_present" in out and "PASSED test_in_a_test.py::test_undeclared" in out
    assert "pip install -e '.[test]'" in out


@pytest.mark.parametrize("value", ["true", "1"])
def test_missing_oracle_fails_under_ci(tmp_path, value):
    code, out = run_probe(tmp_path, ci=value)
    assert code != 0, out
    assert "FAILED test_in_a_test.py::test_missing" in out and "CI=true: test oracle 'captum.attr'" in out, out
    assert "ERROR test_at_module_level.py" in out and "'torchray.attribution'" in out, out
    assert "PASSED test_in_a_test.py::test_present" in out
    assert "SKIPPED" not in out


def test_ci_false_is_not_ci(tmp_path):
    code, out = run_probe(tmp_path, ci="false")
    assert code == 0 and "2 passed, 2 skipped" in out, out


def test_oracles_are_the_declared_test_extra():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(ORACLES.values()) <= requirement_names(extras["test"])


def test_no_test_skips_silently_on_a_missing_import():
    """Every optional import goes through conftest.oracle (a plain importorskip would skip in CI)."""
    pattern = re.compile(r"pytest\s*\.\s*importor" + r"skip\s*\(")
    offenders = [p.name for p in TESTS.rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders, f"use conftest.oracle(...) instead of pytest.importorskip in {offenders}"


# --- the install split -----------------------------------------------------------------------------
def torch_pins() -> str:
    match = re.search(r"^TORCH_PINS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile: TORCH_PINS not found"
    return match.group(1).strip()


def dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands ``make -n <target>`` would run with a fresh (absent) virtual environment."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed (the project's entry points need it)")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under `make test`
    out = subprocess.run([make, "-n", "--no-print-directory", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return out.splitlines()


def pip_installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "-m pip install" in line]


def test_make_figures_installs_the_runtime_only(tmp_path):
    installs = pip_installs(dry_run("figures", tmp_path))
    assert len(installs) == 2, installs
    assert all(line.endswith(torch_pins()) for line in installs), installs  # every step pinned
    assert "-e '.[notebooks]'" in installs[1]
    assert not any("test]" in line or ",test" in line for line in installs), installs


def test_make_test_adds_the_test_extras(tmp_path):
    lines = dry_run("test", tmp_path)
    installs = pip_installs(lines)
    assert len(installs) == 3, installs
    assert all(line.endswith(torch_pins()) for line in installs), installs
    assert "-e '.[notebooks]'" in installs[1] and "-e '.[notebooks,test]'" in installs[2]
    # the venv is created first, pytest runs last
    assert "-m venv" in next(line for line in lines if "venv" in line)
    assert "-m pytest" in lines[-1] and " tests build/smoke/" in lines[-1]
    assert "-n auto --dist loadscope" in lines[-1]  # one worker per core, units of work from conftest.work_unit


def test_make_test_fast_runs_the_library_tests_only(tmp_path):
    """The README's fast loop: no notebook is prepared or run, only the library's tests (tests/library),
    the slow ones left out."""
    lines = dry_run("test-fast", tmp_path)
    assert not any("papermill" in line or "build/smoke" in line for line in lines), lines
    assert "-m pytest" in lines[-1] and lines[-1].endswith('tests/library -m "not slow"'), lines[-1]


def test_environment_yml_installs_what_make_test_does():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert " ".join(r for r in pip if r.startswith(("torch==", "torchvision=="))) == torch_pins()
    editable = next(r for r in pip if r.startswith("-e"))
    extras = re.search(r"\[(.*)\]", editable).group(1).split(",")
    assert set(extras) == {"notebooks", "test"} <= set(PYPROJECT["project"]["optional-dependencies"])
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = re.search(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"]).groups()
    assert tuple(int(v) for v in python.split("=")[1].split(".")[:2]) >= tuple(int(v) for v in minimum)


def test_ci_entry_points_run_make_test():
    run = (ROOT / ".ci" / "run").read_text()
    assert run.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in run and run.rstrip().endswith("make test\nmake test-paper")
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and 0 < job["timeout-minutes"] < 90 and job["env"]["CI"] == "true"
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    assert any(s.get("run") == ".ci/run" for s in job["steps"])


def test_an_oracles_import_leaves_the_environment_alone(tmp_path, monkeypatch):
    """quantus imports cv2, which sets Qt's variables: the test that imports an oracle first must not
    hand the others a changed environment (found by running tests/test_adapters.py alone)."""
    import oracle_imports

    (tmp_path / "probe_oracle.py").write_text("import os\nos.environ['REVISAL_PROBE_ORACLE'] = '1'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(oracle_imports.ORACLES, "probe_oracle", "probe-oracle")
    before = dict(os.environ)
    try:
        assert oracle_imports.oracle("probe_oracle").__name__ == "probe_oracle"
        assert dict(os.environ) == before
    finally:
        sys.modules.pop("probe_oracle", None)


def test_the_runtime_install_holds_every_photo_package_the_notebooks_use():
    """A fresh clone's ``make figures`` installs the runtime and the notebooks extra only: a photo
    package that only the test extra brought (scikit-learn's china and flower) made the grid
    pointing game of a fresh clone differ from the committed figures."""
    from reproduction.mosaics import SOURCES

    runtime = requirement_names(PYPROJECT["project"]["dependencies"]) | \
        requirement_names(PYPROJECT["project"]["optional-dependencies"]["notebooks"])
    assert {package for package, _ in SOURCES.values()} <= runtime
