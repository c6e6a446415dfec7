"""Notebook parameters: declared once (the parameters cell), routed from a profile's config (each
notebook gets only its own keys; unknown keys are errors) and checked before any compute or write."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reproduction import parameter_checks, params
from reproduction.studies import studies

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


# --- each study's typed parameters ------------------------------------------------------------------------
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_a_studys_parameters_are_exactly_its_parameters_cell(notebook):
    """One field per name the cell declares (no more, no fewer), each with a check that resolves, and
    no default: the defaults live only in the parameters cell."""
    study = studies()[notebook[:2]]
    assert study.notebook == notebook
    checks = study.checks()
    assert set(checks) == set(params.declared(notebook))
    for name, declared in checks.items():
        assert callable(parameter_checks.resolve(declared)), name
    fields = dataclasses.fields(study.parameters)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    defaults = params.declared(notebook)
    assert dataclasses.asdict(study.parameters(**defaults)) == defaults  # typed values of the cell


def test_an_unknown_kind_of_check_is_a_defect_named_at_once():
    from reproduction.studies._parameters import check

    with pytest.raises(TypeError, match="no such kind of check"):
        parameter_checks.resolve(check("colour"))


def test_a_field_the_cell_does_not_declare_is_reported(monkeypatch):
    """A Parameters field with no name in the parameters cell (a renamed parameter) is a problem
    of the notebook, not silently unchecked."""
    defaults = params.declared("06")
    del defaults["min_mass_gain"]
    monkeypatch.setattr(params, "declared", lambda notebook: dict(defaults))
    found = params.problems("06", defaults)
    assert found == ["min_mass_gain: a field of reproduction.studies.captioning.Parameters that the parameters cell "
                     "does not declare"]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_notebooks_defaults_pass_its_checks(notebook):
    defaults = params.declared(notebook)
    assert defaults["profile"] == "mini" and "figures_dir" in defaults
    assert params.problems(notebook, defaults) == []
    assert params.check_parameters(notebook, {**defaults, "unrelated": 1}) == defaults  # declared order, own keys


def test_notebooks_are_found_by_number_stem_or_path():
    path = params.notebook_path("02")
    assert path == params.notebook_path("02_layer_combination") == params.notebook_path(path)
    with pytest.raises(ValueError, match="notebook: no notebook '09'"):
        params.notebook_path("09")


@pytest.mark.parametrize("where", ["outside", "nested"])
def test_a_notebook_check_from_another_working_directory_finds_the_checkout(tmp_path, monkeypatch, where):
    """Run from a folder outside the checkout (papermill without --cwd, a script elsewhere), the
    check used to say "no notebook '00'; expected one of []": the checkout is now found from the
    package's own location, and every project path with it."""
    import reproduction
    from reproduction import storage

    assert storage.PACKAGE_PARENT == Path(reproduction.__file__).resolve().parent.parent
    monkeypatch.setattr(storage, "PACKAGE_PARENT", ROOT)  # the package imported from this checkout, as in make test
    cwd = tmp_path / "a" / "b" if where == "nested" else tmp_path
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    assert [p.stem for p in params.notebooks()] == NOTEBOOKS
    for notebook in ("00", "02_layer_combination", "04_meta_saliency.ipynb"):
        path = params.notebook_path(notebook)
        assert path.parent == ROOT / "notebooks"
        defaults = params.declared(path)
        assert params.check_parameters(notebook, defaults) == defaults
    assert storage.project_path("data/cache") == ROOT / "data" / "cache"
    params.main([str(ROOT / "configs" / "smoke.yaml")])  # the CLI, too (checks only)
    assert not any(tmp_path.rglob("*.yaml"))  # nothing written where it was run


def test_outside_any_checkout_the_check_says_what_is_wrong(tmp_path, monkeypatch):
    """An installed package (not in a checkout) run outside one: say so, not "expected one of []"."""
    from reproduction import storage

    monkeypatch.setattr(storage, "PACKAGE_PARENT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no revisal checkout here: neither the working directory .* nor the revisal "
                                         "package .* pyproject.toml and notebooks/"):
        params.check_parameters("00", {})
    assert storage.project_path("x") == tmp_path / "x"  # plain paths stay relative to the working directory
    (tmp_path / "notebooks").mkdir()  # a checkout without notebooks
    (tmp_path / "pyproject.toml").write_text("")
    with pytest.raises(ValueError, match=r"notebooks: .*notebooks holds no numbered notebook"):
        params.notebook_path("00")


# --- configs → notebooks -------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["mini", "smoke", "paper"])
def test_profiles_give_each_notebook_only_its_own_keys(profile):
    routed = params.route(ROOT / "configs" / f"{profile}.yaml")
    assert sorted(routed) == NOTEBOOKS
    for notebook, values in routed.items():
        assert set(values) <= set(params.declared(notebook)), notebook
        assert values.get("profile", params.declared(notebook)["profile"]) == profile
        if profile != "paper":  # the paper profile's data is not on this machine
            assert params.problems(notebook, {**params.declared(notebook), **values}) == [], notebook


def test_precedence_defaults_shared_section_overrides():
    config = {"seed": 1, "batch_size": 8, "02_layer_combination": {"batch_size": 4}}
    routed = params.route(config, {"seed": 7})
    assert routed["02_layer_combination"]["batch_size"] == 4  # the section beats the shared key
    assert routed["03_class_sensitivity"]["batch_size"] == 8
    assert {v["seed"] for v in routed.values()} == {7}  # overrides beat everything
    assert "batch_size" not in routed["00_extract_aggregate"]  # 00 does not declare it
    one = params.route(ROOT / "configs" / "mini.yaml", {"photos": ["coffee"]}, among=["02_layer_combination.ipynb"])
    assert list(one) == ["02_layer_combination"]  # other notebooks' keys are known, just not passed to 02


@pytest.mark.parametrize("config, overrides, expected", [
    ({"pointng_n": 4}, {}, ["pointng_n: no notebook declares", "pointing_n"]),  # ignored today
    ({"02_layer_combination": {"fig3_modle": "mini_vgg"}}, {}, ["02_layer_combination.fig3_modle", "fig3_model"]),
    ({"03_class_sensitivty": {"gt_class": "tabby"}}, {}, ["03_class_sensitivty: no notebook is named so"]),
    ({"04_meta_saliency": {"photo": "chelsea"}}, {}, ["04_meta_saliency.photo", "photos"]),  # another notebook's key
    ({"02_layer_combination": ["fig3_model"]}, {}, ["02_layer_combination: expected a section"]),
    ({}, {"figure_dir": "x"}, ["figure_dir", "--set", "figures_dir"]),
])
def test_unknown_keys_are_errors(config, overrides, expected):
    with pytest.raises(ValueError, match="unknown key") as e:
        params.route(config, overrides)
    for text in expected:
        assert text in str(e.value)


def test_every_unknown_key_is_listed_at_once():
    with pytest.raises(ValueError, match="3 unknown keys") as e:
        params.route({"pointng_n": 1, "sed": 0, "02_layer_combination": {"fig3_modle": "x"}})
    assert all(k in str(e.value) for k in ("pointng_n", "sed", "fig3_modle"))


# --- values ----------------------------------------------------------------------------------------------
def with_values(notebook: str, **values) -> dict:
    return {**params.declared(notebook), **values}


@pytest.mark.parametrize("notebook, values, expected", [
    # the cases: each used to fail only after compute, with figures already written
    ("02", dict(fig3_model="mini_resnt"), "fig3_model: 'mini_resnt' is not one of pointing_models"),
    ("03", dict(qualitative_model="efficientnet_lit0"), "qualitative_model: unknown model 'efficientnet_lit0'"),
    ("04", dict(qualitative_model="nope"), "qualitative_model: unknown model 'nope'"),
    # models, methods, layers, classes, photos
    ("02", dict(pointing_models=["mini_vgg", "vgg16_voc"]), "pointing_models: vgg16_voc does not predict"),
    ("02", dict(methods=["normgrad", "gradcam"]), "methods: unknown method(s) ['gradcam']"),
    ("02", dict(methods=["normgrad"]), "methods: must include"),
    ("03", dict(methods="grad_cam"), "methods: expected a list of names, got the string 'grad_cam'"),
    ("04", dict(photos="chelsea"), "photos: expected a list of names, got the string"),
    ("05", dict(qualitative_blocks="classifier"), "qualitative_blocks: expected a list of names"),
    ("02", dict(fig3_methods=["deconvnet"]), "fig3_methods: ['deconvnet'] are not in methods"),
    ("00", dict(layers=["blocks.1", "blocks.9"]), "layers: 'blocks.9' is not a module of efficientnet_lite0"),
    ("00", dict(target_class="tiger kat"), "target_class: efficientnet_lite0 has no class 'tiger kat'"),
    ("00", dict(photo="chelsey"), "photo: unknown photo(s) ['chelsey']"),
    ("01", dict(identity_layers={"mini_vgg": ["features.3"], "mini_resnet": ["layer1.0.conv1"]}),
     "'features.3' is a ReLU in mini_vgg, not a Conv2d"),
    ("01", dict(identity_layers={"mini_vgg": ["features.2"]}), "identity_layers: no layers for ['mini_resnet']"),
    ("03", dict(qualitative_layer="blocks.50"), "qualitative_layer: 'blocks.50' is not a module"),
    ("03", dict(sensitivity_layers=["features.99"]), "sensitivity_layers: 'features.99'"),
    ("04", dict(dynamics_model="efficientnet_lite0"), "dynamics_model: expected one of"),
    ("04", dict(train={"epocs": 2}), "train: unknown TrainConfig field(s) ['epocs']"),
    # nested values: their types and ranges (they used to fail only inside notebook 04's training)
    ("04", dict(train={"epochs": "two"}), "train.epochs: expected an int, got 'two'"),
    ("04", dict(train={"epochs": -1}), "train.epochs: expected an int ≥ 1, got -1"),
    ("04", dict(train={"epochs": 2.0}), "train.epochs: expected an int, got 2.0"),
    ("04", dict(train={"lr": "1e-3"}), "train.lr: expected a finite number > 0, got '1e-3' (text to YAML"),
    ("04", dict(train={"lr": 0.0}), "train.lr: expected a finite number > 0, got 0.0"),
    ("04", dict(train={"weight_decay": -1e-4}), "train.weight_decay: expected a finite number ≥ 0"),
    ("04", dict(train={"seed": -1}), "train.seed: expected an int ≥ 0"),
    ("04", dict(train={"threads": 0, "out": ""}), "train.threads: expected an int ≥ 1, got 0; train.out: expected a "
                                                  "non-empty string"),
    ("04", dict(train={"image_size": [64]}), "train.image_size: expected an int, got [64]"),
    ("04", dict(train={"batch_size": 64, "train_size": 32}), "train: batch_size 64 > train_size 32"),
    ("04", dict(train={"train_size": 16}), "train: batch_size 32 > train_size 16"),  # the default batch size
    ("06", dict(caption_train={"out": "x", "epochs": 0}), "caption_train.epochs: expected an int ≥ 1"),
    ("06", dict(caption_train={"out": "x", "val_size": "1k"}), "caption_train.val_size: expected an int, got '1k'"),
    ("03", dict(meta_lr="5e-5"), "meta_lr: expected a finite number > 0, got '5e-5' (text to YAML"),
    ("05", dict(randomization_blocks=["classifier.3", "classifer.0"]), "randomization_blocks: 'classifer.0'"),
    ("05", dict(randomization_map_layer="features.8"), "randomization_map_layer: 'features.8' is not a module of "
                                                       "efficientnet_lite0"),
    ("06", dict(caption_layers=["encoder.layer5"]), "caption_layers: 'encoder.layer5'"),
    ("06", dict(caption_method="normgrd"), "caption_method: unknown method(s) ['normgrd']"),
    ("06", dict(captioner_checkpoint="no/such/file.pt"), "captioner_checkpoint: "),
    # counts, numbers, switches, datasets, devices
    ("02", dict(batch_size=0), "batch_size: expected an int ≥ 1, got 0"),
    ("03", dict(batch_size=2.5), "batch_size: expected an int, got 2.5"),
    ("02", dict(pointing_n=-1), "pointing_n: expected an int ≥ 1"),
    ("02", dict(fig2_pair=-1), "fig2_pair: expected an int ≥ 0"),
    ("05", dict(randomization_n=True), "randomization_n: expected an int, got True"),
    ("03", dict(meta_lr=float("nan")), "meta_lr: expected a finite number > 0"),
    ("02", dict(verify_checkpoints="yes"), "verify_checkpoints: expected true or false"),
    ("02", dict(pointing_dataset="voc"), "pointing_dataset: expected one of"),
    ("02", dict(pointing_dataset="voc07", pointing_models=["vgg16_voc"], fig3_model="vgg16_voc",
                data_root="no/such/voc"), "pointing_dataset: 'voc07' needs its data in 'no/such/voc'"),
    ("02", dict(pointing_dataset="voc07", pointing_models=["vgg16_voc"], fig3_model="vgg16_voc",
                checkpoint_dir="no/such/dir"), "vgg16_voc's checkpoint"),
    ("03", dict(image_dataset="imagenet", imagenet_root="no/such/imagenet"), "image_dataset: 'imagenet' needs"),
    ("00", dict(device="gpu"), "device: expected a torch device"),
    ("00", dict(image_size="224"), "image_size: expected an int"),
])
def test_bad_values_are_named(notebook, values, expected):
    with pytest.raises(ValueError, match="nothing was computed or written") as e:
        params.check_parameters(notebook, with_values(notebook, **values))
    assert expected in str(e.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(ValueError, match="4 problems") as e:
        params.check_parameters("02", with_values("02", fig3_model="x", batch_size=0, methods=["gradcam"],
                                                  weight_images=None))
    for name in ("fig3_model", "batch_size", "methods", "weight_images"):
        assert f"  - {name}: " in str(e.value)


def test_a_missing_parameter_is_named():
    values = params.declared("05")
    del values["randomization_layer"]
    with pytest.raises(ValueError, match=r"\['randomization_layer'\]: not set"):
        params.check_parameters("05", values)


# --- the command line that feeds papermill ----------------------------------------------------------------
def test_cli_writes_each_notebooks_file_only_when_it_changes(tmp_path):
    config = tmp_path / "profile.yaml"
    config.write_text((ROOT / "configs" / "smoke.yaml").read_text())
    out = tmp_path / "params"
    params.main([str(config), "--set", "figures_dir=build/x", "-o", str(out)])
    files = {p.stem: p for p in out.glob("*.yaml")}
    assert sorted(files) == NOTEBOOKS
    assert yaml.safe_load(files["06_captioning"].read_text()) == {
        "profile": "smoke", "bootstrap_resamples": 200, "caption_examples": 2, "caption_n": 100,
        "figures_dir": "build/x"}
    stamps = {k: p.stat().st_mtime_ns for k, p in files.items()}
    config.write_text(config.read_text().replace("caption_n: 100", "caption_n: 99"))
    params.main([str(config), "--set", "figures_dir=build/x", "-o", str(out)])
    changed = [k for k, p in files.items() if p.stat().st_mtime_ns != stamps[k]]
    assert changed == ["06_captioning"]  # so make re-runs that notebook only


def test_cli_refuses_a_misspelt_key_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "profile.yaml"
    config.write_text((ROOT / "configs" / "mini.yaml").read_text() + "02_layer_combination:\n  fig3_modle: mini_vgg\n")
    with pytest.raises(SystemExit) as e:
        params.main([str(config), "-o", str(tmp_path / "params")])
    assert e.value.code == 2
    assert "fig3_modle" in capsys.readouterr().err
    assert not (tmp_path / "params").exists()


def test_make_figures_stops_on_a_misspelt_key_before_any_notebook_runs(tmp_path):
    """The Makefile's rules, in a scratch copy of the project: the parameter step fails, and no
    notebook is executed (no build/executed/, no figure)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    # The studies declare each notebook's outputs (build/studies.mk is generated from them).
    shutil.copytree(ROOT / "reproduction" / "studies", tmp_path / "reproduction" / "studies")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "typo.yaml").write_text(
        (ROOT / "configs" / "mini.yaml").read_text() + "pointng_n: 4\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(["make", "figures", "PROFILE=typo", f"PY={sys.executable}", "RUNTIME_STAMP="], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode != 0
    assert "pointng_n: no notebook declares this parameter" in out.stderr, out.stderr
    assert "papermill" not in out.stdout
    assert not (tmp_path / "build" / "executed").exists() and not (tmp_path / "figures").exists()


def test_every_training_config_field_has_a_check():
    import dataclasses

    from reproduction.captioner import CaptionerConfig
    from reproduction.checks import TRAIN_FIELDS
    from reproduction.train import TrainConfig

    for config in (TrainConfig, CaptionerConfig):
        fields = {f.name: f.default for f in dataclasses.fields(config)}
        assert set(fields) == set(TRAIN_FIELDS), config
        assert all(TRAIN_FIELDS[k](v, k) == v for k, v in fields.items())  # the defaults pass


def cli_error(tmp_path, capsys, config_text: str | None, *sets: str) -> str:
    """Run the parameter CLI on a config (written to tmp_path, or configs/smoke.yaml); it must exit 2
    with one message, no traceback and nothing written. Returns stderr."""
    config = tmp_path / "profile.yaml"
    if config_text is not None:
        config.write_text(config_text)
    argv = [str(config if config_text is not None else ROOT / "configs" / "smoke.yaml")]
    for s in sets:
        argv += ["--set", s]
    with pytest.raises(SystemExit) as e:
        params.main([*argv, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    return err


SMOKE = (ROOT / "configs" / "smoke.yaml").read_text()


def _edit(old: str, new: str) -> str:
    assert old in SMOKE
    return SMOKE.replace(old, new, 1)


def _line(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.mark.parametrize("config, where, key, expected", [
    (_edit("01_identity_trick:\n  identity_n: 6", "01_identity_trick:\n\tidentity_n: 6"), "\tidentity_n",
     "01_identity_trick.identity_n", "tab"),  # a tab indent
    (_edit("  grid_mosaics: 1", "  grid_mosaics:\t1"), "grid_mosaics", "02_layer_combination.grid_mosaics", "tab"),
    (_edit("photos: [chelsea, coffee]", "photos: [chelsea, coffee"), "photos: [chelsea", "photos",
     "flow sequence"),  # an unclosed bracket: the key that opened it, not the line where parsing gave up
    (_edit("out: build/smoke/models}", "out: build/smoke/models"), "train: {", "04_meta_saliency.train",
     "flow mapping"),
    (_edit("  caption_n: 100", "  caption_n: [100"), "caption_n: [100", "06_captioning.caption_n", "flow sequence"),
])
def test_a_yaml_syntax_error_names_the_file_line_and_key(tmp_path, capsys, config, where, key, expected):
    err = cli_error(tmp_path, capsys, config)
    config_path = tmp_path / "profile.yaml"
    assert f"{config_path}, line " in err and f"(key {key!r})" in err and expected in err
    line = int(err.split(f"{config_path}, line ")[1].split()[0])
    assert line >= _line(config, where)  # where the parser stopped: that line or, for an open bracket, below
    with pytest.raises(ValueError, match="line"):  # the library call too: a ValueError, not yaml's own error
        params.route(config_path)


@pytest.mark.parametrize("config, key", [
    (SMOKE + "seed: 3\nseed: 4\n", "seed"),  # at the top level
    (_edit("  grid_mosaics: 1", "  grid_mosaics: 1\n  weight_images: 8"), "weight_images"),  # in a section
    (SMOKE + "02_layer_combination:\n  batch_size: 4\n", "02_layer_combination"),  # a section twice
    (_edit("epochs: 2,", "epochs: 2, epochs: 3,"), "epochs"),  # in a flow mapping
])
def test_a_repeated_key_is_refused(tmp_path, capsys, config, key):
    """PyYAML keeps the last of two equal keys; the config check refuses them and says where both are."""
    err = cli_error(tmp_path, capsys, config)
    assert f"found the key {key!r} twice (first on line " in err
    first = int(err.split("first on line ")[1].split(")")[0])
    second = int(err.split(", line ")[1].split()[0])
    assert first <= second and key in config.splitlines()[first - 1] and key in config.splitlines()[second - 1]


@pytest.mark.parametrize("sets, expected", [
    (["photos=[chelsea, coffee"], "--set photos, line 1: expected ',' or ']'"),
    (["train={epochs: 2, epochs: 3}"], "--set train, line 1: found the key 'epochs' twice"),
    (["train=\tepochs: 2"], "--set train, line 1"),
    (["seed=1", "seed=2"], "--set: ['seed'] given more than once"),
    (["train={epochs: two}"], "04_meta_saliency: train.epochs: expected an int, got 'two'"),
    (["train={epochs: -1, lr: 1e-3}"], "train.epochs: expected an int ≥ 1, got -1; train.lr: expected a finite number "
                                       "> 0, got '1e-3' (text to YAML"),
    (["caption_train={out: x, batch_size: 0}"], "06_captioning: caption_train.batch_size: expected an int ≥ 1"),
    (["randomization_blocks=authors"], "randomization_blocks: the authors' stages exist for ['resnet50', 'vgg16'], "
                                       "not 'mini_vgg'"),
    (["qualitative_blocks=authors"], "qualitative_blocks: the authors' stages exist for ['resnet50', 'vgg16'], "
                                     "not 'efficientnet_lite0'"),
    (["train={objective: softmax}"], "train.objective: expected one of"),
])
def test_set_values_are_checked_as_config_values(tmp_path, capsys, sets, expected):
    assert expected in cli_error(tmp_path, capsys, None, *sets)


def test_a_nested_config_value_is_refused_before_any_notebook_runs(tmp_path, capsys):
    config = _edit("epochs: 2,", "epochs: 'two',")
    assert "04_meta_saliency: train.epochs: expected an int, got 'two'" in cli_error(tmp_path, capsys, config)
    assert "train.epochs" in cli_error(tmp_path, capsys, _edit("epochs: 2,", "epochs: -1,"))


# --- a notebook stops before computing or writing anything -------------------------------------------------
def test_notebook_with_a_bad_parameter_writes_nothing(tmp_path):
    """Notebook 03 with an unknown qualitative model used to compute the class-sensitivity study and
    write fig06 before failing."""
    import papermill
    figures = tmp_path / "figures"
    values = params.route(ROOT / "configs" / "smoke.yaml", {
        "figures_dir": str(figures), "cache_root": str(tmp_path / "cache"), "qualitative_model": "efficientnet_lit0",
        "sensitivity_n": 2, "methods": ["grad_cam", "gradient_sum", "linear_approx", "excitation_backprop",
                                        "guided_backprop"]})["03_class_sensitivity"]
    with pytest.raises(papermill.PapermillExecutionError, match="qualitative_model: unknown model"):
        papermill.execute_notebook(str(ROOT / "notebooks" / "03_class_sensitivity.ipynb"), str(tmp_path / "03.ipynb"),
                                   parameters=values, kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    assert not figures.exists() or not any(figures.iterdir())
    assert not (tmp_path / "cache").exists()


# --- each default lives in one place; papermill gets only known keys ----------------------------------------
@pytest.mark.parametrize("profile", ["mini", "smoke"])
def test_configs_repeat_no_default(profile):
    """A key whose value equals the default of every notebook that declares it would be a second
    copy of that default (the mini profile is the defaults, so configs/mini.yaml holds no key)."""
    config = params.load_config(ROOT / "configs" / f"{profile}.yaml")
    names = {nb: params.declared(nb) for nb in NOTEBOOKS}
    repeated = [f"{nb}.{k}" for nb in NOTEBOOKS for k, v in (config.get(nb) or {}).items() if names[nb].get(k) == v]
    repeated += [k for k, v in config.items() if k not in names
                 and all(d[k] == v for d in names.values() if k in d)]
    assert not repeated, f"configs/{profile}.yaml repeats the notebooks' defaults: {repeated}"


@pytest.mark.parametrize("profile", ["mini", "smoke", "paper"])
def test_papermill_is_passed_no_unknown_parameter(profile, caplog, tmp_path):
    """papermill warns 'Passed unknown parameter' for a key a notebook does not declare; `make figures`
    used to print about 25 per notebook. Prepared as `make figures` prepares them (no execution)."""
    import logging

    import papermill

    def prepare(notebook, values):
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(tmp_path / f"{notebook}.ipynb"),
                                   parameters=values, prepare_only=True, kernel_name="python3", progress_bar=False)

    routed = params.route(ROOT / "configs" / f"{profile}.yaml", {"figures_dir": "figures", "device": "cpu"})
    with caplog.at_level(logging.WARNING, logger="papermill"):
        for notebook, values in routed.items():
            prepare(notebook, values)
    assert not [r.getMessage() for r in caplog.records if "unknown parameter" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="papermill"):  # the check itself can fail
        prepare("06_captioning", {"photo": "chelsea"})
    assert any("Passed unknown parameter: photo" in r.getMessage() for r in caplog.records)


def test_a_notebook_run_by_hand_writes_to_build_scratch():
    assert {nb: params.declared(nb)["figures_dir"] for nb in NOTEBOOKS} == {nb: "build/scratch" for nb in NOTEBOOKS}


def test_make_figures_nb_runs_one_notebook_and_make_lab_opens_the_lab():
    def dry(*args):
        return subprocess.run(["make", "-n", *args, "STAMP=", f"PY={sys.executable}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)

    one = dry("figures", "NB=04")
    assert one.returncode == 0, one.stderr
    assert "papermill notebooks/04_meta_saliency.ipynb" in one.stdout and one.stdout.count("papermill notebooks/") == 1
    assert "fig10_meta_dynamics.png" in one.stdout and "fig03_pointing_by_depth" not in one.stdout
    bad = dry("figures", "NB=09")
    assert bad.returncode != 0 and "NB=09: expected notebook numbers" in bad.stderr
    lab = dry("lab")
    assert lab.returncode == 0 and "jupyter-lab notebooks/" in lab.stdout
