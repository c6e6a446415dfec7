"""CITATION.cff cites the paper the package reproduces, and its version is the package's."""

from __future__ import annotations

from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_citation_cites_the_paper_and_tracks_the_package_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == project["version"]  # bumped together (CONTRIBUTING's release checklist)
    assert cff["license"] == project["license"]["text"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "There and Back Again: Revisiting Backpropagation Saliency Methods"
    assert [a["family-names"] for a in paper["authors"]] == ["Rebuffi", "Fong", "Ji", "Vedaldi"]
    assert paper["year"] == 2020 and "CVPR" in paper["collection-title"]
    assert any(ref["title"] == "TorchRay" for ref in cff["references"])
