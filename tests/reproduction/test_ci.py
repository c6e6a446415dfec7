"""The test suite's own guarantees: a missing test oracle fails a CI run (and only skips elsewhere),
the oracles are the declared test extra, the lock files pin every requirement of pyproject.toml, and
the install split (`make figures` installs the runtime lock only, `make test` adds the test lock)
holds, also in environment.yml; CI builds, checks and publishes the site."""

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


# --- the install split, from the lock files -------------------------------------------------------------
LOCKS = {"runtime": ROOT / "requirements" / "runtime.txt", "test": ROOT / "requirements" / "test.txt"}
PINS = ROOT / "requirements" / "pins.txt"


def pinned(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a requirements file; every line that is not a comment must be
    an exact pin (``name==version``, with pip-compile's inline ``# via`` note)."""
    pins = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", text)
        assert match, f"{path.name}: {line!r} is not an exact pin"
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_every_requirement_of_pyproject_is_pinned_in_the_locks():
    """The lock files match pyproject.toml (make lock-check, in CI, regenerates them to be sure): each
    dependency of the runtime (the package and its notebooks extra) and of the tests is pinned at a
    version its range admits; the runtime's pins are the tests' pins; torch and torchvision are held at
    requirements/pins.txt."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    locks = {name: pinned(path) for name, path in LOCKS.items()}
    project, extras = PYPROJECT["project"]["dependencies"], PYPROJECT["project"]["optional-dependencies"]
    wanted = {"runtime": project + extras["notebooks"], "test": project + extras["notebooks"] + extras["test"]}
    for name, requirements in wanted.items():
        for text in requirements:
            requirement = Requirement(text)
            version = locks[name].get(canonicalize_name(requirement.name))
            assert version is not None, f"{LOCKS[name].name}: {requirement.name} is not pinned; run make lock"
            assert requirement.specifier.contains(version, prereleases=True), \
                f"{LOCKS[name].name}: {requirement.name}=={version} is outside {text!r}; run make lock"
    shared = {k: v for k, v in locks["runtime"].items() if locks["test"].get(k) != v}
    assert not shared, f"runtime.txt and test.txt pin these differently (or test.txt lacks them): {shared}"
    pins = pinned(PINS)
    assert set(pins) == {"torch", "torchvision"}
    for lock in locks.values():
        assert {k: lock[k] for k in pins} == pins


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
    """From the runtime lock, then the package itself with nothing resolved."""
    installs = pip_installs(dry_run("figures", tmp_path))
    assert len(installs) == 2, installs
    assert installs[0].endswith("-r requirements/runtime.txt"), installs
    assert installs[1].endswith("--no-deps -e ."), installs
    assert not any("test.txt" in line or "[" in line for line in installs), installs


def test_make_test_adds_the_test_lock(tmp_path):
    lines = dry_run("test", tmp_path)
    installs = pip_installs(lines)
    assert len(installs) == 3, installs
    assert installs[0].endswith("-r requirements/runtime.txt") and installs[1].endswith("--no-deps -e .")
    assert installs[2].endswith("-r requirements/test.txt"), installs
    # the venv is created first, pytest runs last
    assert "-m venv" in next(line for line in lines if "venv" in line)
    assert "-m pytest" in lines[-1] and " tests build/smoke/" in lines[-1]
    assert "-n auto --dist loadscope" in lines[-1]  # one worker per core, units of work from conftest.work_unit
    assert '-m "not paper_profile and not site"' in lines[-1]


def test_make_lock_check_regenerates_a_copy_and_compares(tmp_path):
    lines = dry_run("lock-check", tmp_path)
    compiles = [line for line in lines if "pip-compile" in line]
    assert len(compiles) == 2 and all(line.startswith("cd build/lock-check && ") for line in compiles), compiles
    assert all("-c requirements/pins.txt" in line for line in compiles)
    assert "--extra notebooks --extra test -o requirements/test.txt" in compiles[0]
    assert "--extra notebooks -c requirements/test.txt -o requirements/runtime.txt" in compiles[1]
    assert lines[-1].startswith("diff -ru requirements build/lock-check/requirements")


def test_make_site_and_its_browser_test(tmp_path):
    """``make site`` renders the profile's executed notebooks; ``make test-site`` opens build/site in a
    browser: the tests marked ``site``, which ``make test`` leaves out."""
    assert dry_run("site", tmp_path)[-1].endswith("-m reproduction.site --profile mini")
    last = dry_run("test-site", tmp_path)[-1]
    assert last.startswith("REVISAL_SITE=build/site ") and last.endswith("-m pytest -p no:cacheprovider tests/browser -m site")


def test_make_test_fast_runs_the_library_tests_only(tmp_path):
    """The README's fast loop: no notebook is prepared or run, only the library's tests (tests/library),
    the slow ones left out."""
    lines = dry_run("test-fast", tmp_path)
    assert not any("papermill" in line or "build/smoke" in line for line in lines), lines
    assert "-m pytest" in lines[-1] and lines[-1].endswith('tests/library -m "not slow"'), lines[-1]


def test_environment_yml_installs_from_the_test_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip == ["-r requirements/test.txt", "-e ."]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"  # the Python the lock files are resolved for
    assert "# This file is autogenerated by pip-compile with Python 3.11" in LOCKS["test"].read_text()


def test_ci_entry_points_run_make_test():
    run = (ROOT / ".ci" / "run").read_text()
    assert run.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in run
    steps = [line for line in run.splitlines() if line.startswith("make ")]
    assert steps == ["make lock-check", "make test", "make test-paper", "make -j2 figures", "make site",
                     "make test-site"], steps
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest" and 0 < job["timeout-minutes"] < 90 and job["env"]["CI"] == "true"
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    assert [s.get("run") for s in job["steps"] if s.get("run")] == [".ci/run"]


def test_a_push_to_main_publishes_the_site():
    """After .ci/run has built and checked build/site, a push to main uploads it and the pages job
    deploys it (GitHub Pages); pull requests only build and check it."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job, pages = workflow["jobs"]["test"], workflow["jobs"]["pages"]
    on_main = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "build/site" and upload["if"] == on_main
    assert job["steps"].index(upload) > [s.get("run") for s in job["steps"]].index(".ci/run")
    assert pages["needs"] == "test" and pages["if"] == on_main
    assert pages["permissions"] == {"pages": "write", "id-token": "write"}
    assert [s["uses"].split("@")[0] for s in pages["steps"]] == ["actions/deploy-pages"]


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
