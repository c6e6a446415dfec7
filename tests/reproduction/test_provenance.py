"""Every figure and table says where it comes from: commit and dirty tree, notebook and cell, config
and parameters hash, versions, device, time; figures/MANIFEST.json lists them all."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from reproduction import provenance, report, storage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout of a tiny project (pyproject.toml, notebooks/, configs/mini.yaml), one commit."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "notebooks" / "00_a.ipynb").write_text("{}")
    (root / "configs" / "mini.yaml").write_text("seed: 0\n")
    (root / "code.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.chdir(root)
    monkeypatch.setattr(storage, "PACKAGE_PARENT", root)
    provenance.git_state.cache_clear()
    yield root
    provenance.git_state.cache_clear()


def test_a_sidecar_records_where_its_output_comes_from(checkout):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    params = {"device": "cpu", "seed": 3}
    report.save_figure(fig, "f", out_dir="figures", profile="mini", parameters=params, seed=3, notebook="00_a")
    plt.close(fig)
    prov = json.loads((checkout / "figures" / "f.json").read_text())["provenance"]
    assert prov["commit"] == _git(checkout, "rev-parse", "HEAD") and prov["dirty"] is False  # its own output: clean
    assert prov["notebook"] == "00_a" and prov["config"] == "configs/mini.yaml"
    assert prov["parameters_sha256"] == storage.digest_json(params)[:16]
    assert set(prov["versions"]) == {"torch", "torchvision", "revisal"}
    assert prov["device"] and prov["notebook_elapsed_s"] >= 0
    assert prov["cell"] is None  # not in a kernel here


def test_code_that_differs_from_the_commit_is_dirty_outputs_are_not(checkout):
    (checkout / "figures").mkdir()
    (checkout / "figures" / "new.png").write_bytes(b"x")
    (checkout / "README.md").write_text("generated\n")
    assert provenance.git_state()["dirty"] is False
    provenance.git_state.cache_clear()
    (checkout / "code.py").write_text("x = 2\n")
    assert provenance.git_state()["dirty"] is True


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "PACKAGE_PARENT", tmp_path)
    monkeypatch.chdir(tmp_path)
    provenance.git_state.cache_clear()
    try:
        assert provenance.git_state() == {"commit": None, "dirty": None}
    finally:
        provenance.git_state.cache_clear()


def test_the_manifest_lists_every_output_with_its_notebooks_wall_time(checkout):
    report.save_table([{"a": 1}], "t", out_dir="figures", profile="mini", parameters={}, notebook="00_a")
    executed = checkout / "build" / "executed"
    executed.mkdir(parents=True)
    (executed / "00_a.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": 12.34}}}))
    got = provenance.manifest(checkout / "figures", executed)
    assert set(got["outputs"]) == {"t"} and got["outputs"]["t"]["files"] == ["t.csv", "t.md", "t.tex"]
    assert got["outputs"]["t"]["notebook_wall_s"] == 12.3 and got["commits"] == [_git(checkout, "rev-parse", "HEAD")]
    assert got["dirty"] is False


def test_the_status_says_whether_heads_code_is_the_figures_commits(checkout, capsys):
    report.save_table([{"a": 1}], "t", out_dir="figures", profile="mini", parameters={}, notebook="00_a")
    provenance.write_manifest(checkout / "figures", checkout / "build" / "executed")
    assert provenance.main([]) == 0
    assert "HEAD's code is the code of that commit" in capsys.readouterr().out
    (checkout / "code.py").write_text("x = 3\n")
    _git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    assert provenance.main([]) == 1
    assert "HEAD's code differs" in capsys.readouterr().out


def test_the_cell_is_the_one_jupyter_shows(tmp_path):
    """In a real kernel, the recorded cell is the prompt Jupyter shows for the cell that wrote the
    output: IPython has already counted the running cell, so its ``execution_count`` is one ahead
    (sidecars once named the cell after the writer). An empty cell gets no number."""
    import nbformat.v4 as v4
    from nbclient import NotebookClient

    nb = v4.new_notebook(cells=[v4.new_code_cell("from reproduction import provenance"), v4.new_code_cell(""),
                                v4.new_code_cell("x = 1"), v4.new_code_cell("print(provenance._cell())")])
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(ROOT)}}).execute()
    cell = nb.cells[-1]
    assert cell.execution_count == 3 and cell.outputs[0]["text"].strip() == "In [3]"
