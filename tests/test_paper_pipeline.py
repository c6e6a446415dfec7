"""The paper profile end to end on small fakes in the exact on-disk formats.

configs/paper.yaml is run through every notebook with its data roots pointed at a fake VOCdevkit,
fake TorchRay checkpoints (random weights, TorchRay's key layout) and a fake ImageNet folder, at a
tiny input size and with random ImageNet weights (nothing downloads), so every paper-profile code
path (Caffe models, VOC pairs and masks, ImageNet images, VGG16/ResNet50 layer presets) runs. Each
notebook gets its own keys from the config, as `make figures` gives them (revisal.experiments.params).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
from PIL import Image
from test_paper_assets import VOC_FAKE, torchray_layout, write_voc

from revisal.experiments import params
from revisal.models.caffe import CHECKPOINTS

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ["fig15_methods_by_depth.png", "fig04_gradcam_by_depth.png", "fig04b_selectivity_by_depth.png",
            "table04_identity_trick.md",
            "table03_pointing_game.md", "table05_best_layer.md", "table06_weighting_gains.md",
            "fig02_layer_combination.png", "fig03_pointing_by_depth.png", "fig09_layer_weights.png",
            "table_grid_photos.md", "table_grid_pointing.md", "fig_grid_pointing.png", "fig_grid_pointing_examples.png",
            "fig06_class_sensitivity.png", "fig05_class_sensitivity_examples.png", "fig07_meta_class_sensitivity.png",
            "fig10_meta_dynamics.png", "fig11_meta_stabilisation.png", "fig12_meta_examples.png",
            "fig08_randomization.png", "fig08b_randomization_curves.png", "fig13_randomization_examples_1.png",
            "fig14_captioning.png", "table_caption_mass.md", *[f"verdicts_0{n}.md" for n in range(7)]]


@pytest.fixture(scope="module")
def paper_fake(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("paper")
    write_voc(tmp / "voc", VOC_FAKE)
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    for (arch, dataset), name in CHECKPOINTS.items():
        if dataset == "voc":
            torch.save(torchray_layout(arch, 20), checkpoints / name)
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537", "n01484850"):
        (tmp / "imagenet" / wnid).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (72, 90, 3), dtype=np.uint8)).save(tmp / "imagenet" / wnid / "a.JPEG")
    return dict(  # overrides of configs/paper.yaml, routed to every notebook that declares them
        device="cpu", figures_dir=str(tmp / "figures"), cache_root=str(tmp / "cache"),
        data_root=str(tmp / "voc"), checkpoint_dir=str(checkpoints), verify_checkpoints=False,
        imagenet_root=str(tmp / "imagenet"), imagenet_pretrained=False, input_size=200, image_size=64,
        identity_n=3, sensitivity_n=3, randomization_n=2, weight_images=3, batch_size=4, dynamics_n=3,
        photos=["chelsea"], qualitative_blocks=["classifier.6"], bootstrap_resamples=100,
        selectivity_photos=["chelsea", "coffee"],
        randomization_blocks=["classifier.6"], caption_n=24, caption_examples=2, grid_mosaics=1,
        train={"train_size": 64, "val_size": 32, "test_size": 32, "epochs": 2, "out": str(tmp / "models")},
    )


def test_paper_profile_resolves_to_the_authors_protocol_on_fakes(paper_fake):
    """configs/paper.yaml routes notebook 02 to TorchRay's flag file and to TorchRay's models in
    fully convolutional form (a class-score map, wider than 1×1 on a non-square input)."""
    from revisal.experiments import resolve

    values = params.route(ROOT / "configs" / "paper.yaml", paper_fake, among=["02_layer_combination"])
    values = values["02_layer_combination"]
    assert values["torchray_flags"] is True and values["pointing_dataset"] == "voc07"
    zoo = resolve.load_model("resnet50_voc", values)
    source = resolve.pointing_source(zoo, values)
    assert source.describe()["flags"] == "torchray" and zoo.contrast_layer == "avgpool"
    with torch.no_grad():
        assert zoo.model(torch.zeros(1, 3, 224, 288)).shape == (1, 20, 1, 3)


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# 03-05 explain torchvision's ImageNet VGG16 (adaptive pooling: any input from 32 px runs the same
# code); the VOC models of 01/02 are fully convolutional and need ~200 px for their 7×7 fc6.
IMAGENET_ONLY_INPUT = {"03_class_sensitivity.ipynb": 64, "04_meta_saliency.ipynb": 64, "05_weight_randomization.ipynb": 64}


@pytest.fixture(scope="module")
def paper_runs(paper_fake, tmp_path_factory) -> dict[str, BaseException | None]:
    """Every notebook run once on the fakes, into one figures folder: notebook -> its error or None.

    One fixture, so that the per-notebook tests and the outputs test see the same runs in any order
    (or alone), and a failing notebook fails its own test, not the ones after it.
    """
    out = tmp_path_factory.mktemp("executed")
    errors: dict[str, BaseException | None] = {}
    for notebook in NOTEBOOKS:
        overrides = dict(paper_fake, input_size=IMAGENET_ONLY_INPUT.get(notebook, paper_fake["input_size"]))
        parameters = params.route(ROOT / "configs" / "paper.yaml", overrides, among=[notebook])[Path(notebook).stem]
        try:
            papermill.execute_notebook(str(ROOT / "notebooks" / notebook), str(out / notebook), parameters=parameters,
                                       kernel_name="python3", cwd=str(ROOT), progress_bar=False)
            errors[notebook] = None
        except Exception as error:  # reported by that notebook's own test
            errors[notebook] = error
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_paper_profile_notebooks_run_on_fakes(paper_runs, notebook):
    if paper_runs[notebook] is not None:
        raise paper_runs[notebook]


@pytest.mark.slow
def test_paper_profile_wrote_every_output(paper_fake, paper_runs):
    """Every figure and table is there once the notebooks have run."""
    figures = Path(paper_fake["figures_dir"])
    missing = [name for name in EXPECTED if not (figures / name).is_file()]
    assert not missing, f"not written: {missing}"
    without_values = [p.name for p in figures.glob("fig*.png") if not p.with_suffix(".csv").is_file()]
    assert not without_values, f"figures without their plotted values (CSV): {without_values}"
    table3 = (figures / "table03_pointing_game.md").read_text()
    assert "vgg16_voc all b.s." in table3 and "paper vgg16 all b.s." in table3
