"""The paper profile end to end on small fakes in the exact on-disk formats.

configs/paper.yaml is run through every notebook with its data roots pointed at a fake VOCdevkit,
fake TorchRay checkpoints (random weights, TorchRay's key layout) and a fake ImageNet folder, at a
tiny input size and with random ImageNet weights (nothing downloads), so every paper-profile code
path (Caffe models, VOC pairs and masks, ImageNet images, VGG16/ResNet50 layer presets) runs. Each
notebook gets its own keys from the config, as `make figures` gives them (reproduction.params).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
from PIL import Image
from test_paper_assets import VOC_FAKE, torchray_layout, write_voc

from reproduction import params
from reproduction.caffe_models import CHECKPOINTS
from reproduction.studies import studies

ROOT = Path(__file__).resolve().parents[2]
#: what each notebook must write: every output its study declares (reproduction/studies), a numbered
#: series by its pattern; figures also their plotted values as CSV.
EXPECTED = {number: [o.file for o in study.all_outputs] for number, study in studies().items()}


@pytest.fixture(scope="session")  # once per worker: each notebook is its own unit of work
def paper_fake(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("paper")
    write_voc(tmp / "voc", {name: VOC_FAKE[name] for name in ("000001", "000002")})  # 2 pairs: the runs cost
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    for (arch, dataset), name in CHECKPOINTS.items():
        if dataset == "voc":
            torch.save(torchray_layout(arch, 20), checkpoints / name)
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        (tmp / "imagenet" / wnid).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (72, 90, 3), dtype=np.uint8)).save(tmp / "imagenet" / wnid / "a.JPEG")
    return dict(  # overrides of configs/paper.yaml, routed to every notebook that declares them
        device="cpu", figures_dir=str(tmp / "figures"), cache_root=str(tmp / "cache"),
        data_root=str(tmp / "voc"), checkpoint_dir=str(checkpoints), verify_checkpoints=False,
        imagenet_root=str(tmp / "imagenet"), imagenet_pretrained=False, input_size=200, image_size=64,
        identity_n=2, sensitivity_n=2, randomization_n=2, weight_images=2, batch_size=4, dynamics_n=2, dynamics_seeds=[0, 1],
        photos=["chelsea"], bootstrap_resamples=100, selectivity_photos=["chelsea", "coffee"],
        qualitative_blocks=["classifier.6"],  # Figs. 8/13: one stage (their cascade by the authors' stages costs minutes)
        caption_n=24, caption_examples=2, grid_mosaics=1,
        train={"train_size": 64, "val_size": 32, "test_size": 32, "epochs": 2, "out": str(tmp / "models")},
    )


def test_paper_profile_resolves_to_the_authors_protocol_on_fakes(paper_fake):
    """configs/paper.yaml routes notebook 02 to TorchRay's flag file and to TorchRay's models in
    fully convolutional form (a class-score map, wider than 1×1 on a non-square input)."""
    from reproduction import profiles as resolve

    values = params.route(ROOT / "configs" / "paper.yaml", paper_fake, among=["02_layer_combination"])
    values = values["02_layer_combination"]
    assert values["torchray_flags"] is True and values["pointing_dataset"] == "voc07"
    zoo = resolve.profile_model("resnet50_voc", values)
    source = resolve.pointing_source(zoo, values)
    assert source.describe()["flags"] == "torchray" and zoo.contrast_layer == "avgpool"
    with torch.no_grad():
        assert zoo.model(torch.zeros(1, 3, 224, 288)).shape == (1, 20, 1, 3)


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# 03-05 explain torchvision's ImageNet VGG16 (adaptive pooling: any input from 32 px runs the same
# code); the VOC models of 01/02 are fully convolutional and need ~200 px for their 7×7 fc6.
IMAGENET_ONLY_INPUT = {"03_class_sensitivity.ipynb": 64, "04_meta_saliency.ipynb": 64, "05_weight_randomization.ipynb": 64}


def test_every_notebook_has_its_expected_outputs_listed():
    assert set(EXPECTED) == {name[:2] for name in NOTEBOOKS}, "a notebook without a study declaring its outputs"


# each notebook is its own unit of work under make test-paper (conftest.SPLIT_BY_PARAMETER)
@pytest.mark.slow
@pytest.mark.paper_profile  # make test-paper (CI runs it after make test): ≈ 6.5 worker-minutes on 2 cores
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_paper_profile_notebook_runs_on_fakes_and_writes_its_outputs(paper_fake, notebook, tmp_path):
    """The notebook runs on the fakes with the paper profile's keys (as `make figures` routes them)
    and writes each of its figures and tables, every figure with its plotted values (CSV)."""
    figures = tmp_path / "figures"
    overrides = dict(paper_fake, figures_dir=str(figures),
                     input_size=IMAGENET_ONLY_INPUT.get(notebook, paper_fake["input_size"]))
    parameters = params.route(ROOT / "configs" / "paper.yaml", overrides, among=[notebook])[Path(notebook).stem]
    papermill.execute_notebook(str(ROOT / "notebooks" / notebook), str(tmp_path / notebook), parameters=parameters,
                               kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    missing = [name for name in EXPECTED[notebook[:2]] if not any(figures.glob(name))]
    assert not missing, f"not written: {missing}"
    without_values = [p.name for p in figures.glob("fig*.png") if not p.with_suffix(".csv").is_file()]
    assert not without_values, f"figures without their plotted values (CSV): {without_values}"
    if notebook.startswith("05"):  # the authors' stages: the one above the map layer re-initialises 24 … 28
        assert "every layer above features.22 re-initialised (stage features.22;" in (figures / "verdicts_05.csv").read_text()
    if notebook.startswith("02"):
        table3 = (figures / "table03_pointing_game.md").read_text()
        assert "vgg16_voc all b.s." in table3 and "paper vgg16 all b.s." in table3
