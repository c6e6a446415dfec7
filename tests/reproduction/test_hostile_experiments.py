"""Hostile inputs to the experiment runners and their command line: shards and torchrun variables
that would compute nothing, merges before the shards ran, cache parts moved between slots or runs,
and bad arguments, which must all fail with a clear message (argparse's exit status 2 for
arguments) before any data is read or any result is computed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import reproduction as experiments
from reproduction import RunCache, parse_shard
from reproduction import __main__ as cli
from revisal import saliency as revisal_saliency
from revisal.models import load

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture
def torchrun_env(monkeypatch):
    """Clear torchrun's variables; the test sets the ones it wants."""
    for name in TORCHRUN:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
    return set_env


# --- shards and torchrun ------------------------------------------------------------------------------
@pytest.mark.parametrize("env, match", [
    ({"RANK": "1"}, "WORLD_SIZE is not"),  # used to run as shard 1 of 1: nothing computed, exit 0
    ({"WORLD_SIZE": "2"}, "RANK is not"),
    ({"RANK": "3", "WORLD_SIZE": "2"}, "RANK=3, WORLD_SIZE=2"),  # used to compute nothing, exit 0
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1"),
    ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE=0"),
    ({"RANK": "one", "WORLD_SIZE": "2"}, "RANK='one' is not an integer"),
    ({"RANK": "0", "WORLD_SIZE": "2.0"}, "WORLD_SIZE='2.0' is not an integer"),
    ({"LOCAL_RANK": "1"}, "LOCAL_RANK=1 is set but RANK and WORLD_SIZE are not"),
    ({"LOCAL_RANK": "0", "RANK": "0"}, "WORLD_SIZE is not"),
])
def test_torchrun_variables_are_checked(torchrun_env, env, match):
    torchrun_env(**env)
    with pytest.raises(ValueError, match=f"^shard: .*{match}"):
        parse_shard(None)


def test_torchrun_variables_give_the_shard(torchrun_env):
    assert parse_shard(None) == (0, 1)
    torchrun_env(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1")
    assert parse_shard(None) == (1, 2)
    assert parse_shard("0/3") == (0, 3)  # an explicit shard wins over the environment


@pytest.mark.parametrize("spec", ["2/2", "-1/2", "1/0", "0/-1", "a/b", "1/2/3", "", "1", "0.5/2", (True, 2),
                                  (0.5, 2), (3, 2), [0, 2], (0, 2, 1)])
def test_bad_shard_specs_are_refused(spec):
    with pytest.raises(ValueError, match="^shard: "):
        parse_shard(spec)


# --- cache parts are bound to their place ----------------------------------------------------------------
def test_a_part_copied_over_another_part_is_recomputed(tmp_path):
    cache = RunCache("kind", {"a": 1}, tmp_path)
    cache.save(0, {"x": np.arange(3)})
    cache.save(1, {"x": np.arange(3) + 10})
    shutil.copy(cache._part_path(0), cache._part_path(1))  # intact arrays, wrong slot
    with pytest.warns(UserWarning, match="belongs to another part or run"):
        assert cache.load(1) is None
    np.testing.assert_array_equal(cache.load(0)["x"], np.arange(3))


@pytest.mark.parametrize("other", [("kind", {"a": 2}), ("other_kind", {"a": 1})])
def test_a_part_copied_from_another_run_is_recomputed(tmp_path, other):
    mine, theirs = RunCache("kind", {"a": 1}, tmp_path), RunCache(*other, tmp_path)
    mine.save(0, {"x": np.zeros(2)})
    theirs.save(0, {"x": np.ones(2)})
    shutil.copy(theirs._part_path(0), mine._part_path(0))
    with pytest.warns(UserWarning, match="belongs to another part or run"):
        assert mine.load(0) is None


def test_an_edited_part_is_still_called_corrupt(tmp_path):
    cache = RunCache("kind", {"a": 1}, tmp_path)
    cache.save(0, {"x": np.arange(3)})
    with np.load(cache._part_path(0)) as z:
        arrays = dict(z)
    arrays["x"] = arrays["x"] + 1
    np.savez_compressed(cache._part_path(0), **arrays)
    with pytest.warns(UserWarning, match="corrupt cache part"):
        assert cache.load(0) is None


def test_reserved_array_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="arrays: .*reserved"):
        RunCache("kind", {"a": 1}, tmp_path).save(0, {"__digest__": np.zeros(1)})


def test_pointing_runner_recomputes_a_part_copied_into_another_slot(tmp_path):
    zoo = load("mini_vgg")
    source = experiments.testbed_source(zoo, "test", n=8)
    run = dict(combinations=(), part_size=4, batch_size=8, progress=False, cache_root=tmp_path)
    first = experiments.run_pointing_game(zoo, source, ["grad_cam"], ["features.13"], **run)
    parts = sorted(tmp_path.rglob("part-*.npz"))
    assert len(parts) >= 2
    shutil.copy(parts[0], parts[1])
    computed = []
    with pytest.warns(UserWarning, match="belongs to another part"):
        again = experiments.run_pointing_game(zoo, source, ["grad_cam"], ["features.13"], on_part_saved=computed.append,
                                          **run)
    assert computed == [1]
    np.testing.assert_array_equal(again.hits, first.hits)


def test_merge_before_the_shards_ran_raises(tmp_path):
    zoo = load("mini_vgg")
    source = experiments.testbed_source(zoo, "test", n=8)
    with pytest.raises(experiments.IncompleteRun, match="parts missing"):
        experiments.run_pointing_game(zoo, source, ["grad_cam"], ["features.13"], combinations=(), part_size=4,
                                  progress=False, cache_root=tmp_path, compute=False)


# --- the command line: every argument checked before any work ----------------------------------------------
@pytest.fixture
def no_compute(monkeypatch):
    """Make every step that reads data, loads weights or computes fail the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the command reached a data/compute step with bad arguments")
    for name in ("load", "profile_model", "testbed_source", "detection_source", "weight_sample", "weights_for_layers",
                 "run_pointing_game", "run_class_sensitivity"):
        monkeypatch.setattr(cli, name, forbidden)


def refused(argv: list[str], capsys) -> str:
    """Run the CLI in-process; it must exit with argparse's status 2. Returns its stderr."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    return err


POINTING = ["pointing-game", "--model", "mini_vgg", "--n", "4", "--quiet"]


@pytest.mark.parametrize("extra, expected", [
    (["--layers", "layer9"], ["--layers", "'layer9' is not a module of mini_vgg"]),  # used to be a bare KeyError
    (["--layers", "features.3", "featurs.8"], ["--layers", "featurs.8", "features.8"]),
    (["--methods", "normgrad", "gradcam"], ["--methods", "gradcam", "grad_cam"]),
    (["--dataset", "voc"], ["--dataset", "voc"]),
    (["--dataset", "voc07"], ["--model", "does not predict the classes of 'voc07'"]),
    (["--shard", "2/2"], ["--shard", "2/2"]),
    (["--shard=-1/2"], ["--shard", "-1/2"]),
    (["--shard", "half"], ["--shard", "half"]),
    (["--merge", "--shard", "0/2"], ["--merge"]),
    (["--batch-size", "0"], ["--batch-size", "≥ 1"]),
    (["--batch-size", "two"], ["--batch-size", "two"]),
    (["--n", "0"], ["--n", "≥ 1"]),
    (["--n", "-3"], ["--n", "-3"]),
    (["--meta", "nan"], ["--meta"]),
    (["--meta=-1e-3"], ["--meta", "-0.001"]),
    (["--device", "banana"], ["--device", "banana"]),
    (["--split", "tset"], ["--split"]),
])
def test_bad_pointing_arguments_exit_2_before_any_work(no_compute, capsys, tmp_path, extra, expected):
    err = refused(POINTING + ["--cache-root", str(tmp_path)] + extra, capsys)
    for text in expected:
        assert text in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("argv, expected", [
    (["--model", "vgg16_voc", "--dataset", "voc07", "--n", "5"], "--n: applies to the testbed only"),  # was ignored
    (["--model", "vgg16_voc", "--dataset", "voc07", "--split", "val"], "--split: applies to the testbed only"),
    (["--model", "mini_vgg", "--root", "data/voc"], "--root: the testbed is generated"),
])
def test_arguments_that_would_be_ignored_are_refused(no_compute, capsys, argv, expected):
    assert expected in refused(["pointing-game", *argv], capsys)


def test_unknown_model_and_missing_data_folder(no_compute, capsys):
    assert "mini_vgg" in refused(["pointing-game", "--model", "mini_vgq"], capsys)  # the close match
    err = refused(["pointing-game", "--model", "vgg16_voc", "--dataset", "voc07", "--root", "/no/such/voc"], capsys)
    assert "--root" in err and "/no/such/voc" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused(no_compute, capsys):
    assert "no CUDA" in refused(POINTING + ["--device", "cuda"], capsys)


@pytest.mark.parametrize("env, expected", [
    ({"RANK": "1"}, "WORLD_SIZE is not"),
    ({"RANK": "3", "WORLD_SIZE": "2"}, "RANK=3, WORLD_SIZE=2"),
    ({"WORLD_SIZE": "2"}, "RANK is not"),
    ({"LOCAL_RANK": "0"}, "LOCAL_RANK=0"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x'"),
])
def test_bad_torchrun_variables_exit_2_before_any_work(no_compute, torchrun_env, capsys, env, expected):
    torchrun_env(**env)
    assert expected in refused(POINTING, capsys)


@pytest.mark.parametrize("extra, expected", [
    (["--layers", "layer9"], "'layer9' is not a module of mini_resnet"),
    (["--n", "0"], "--n"),
    (["--methods", "normgrd"], "normgrad"),
])
def test_bad_class_sensitivity_arguments_exit_2(no_compute, capsys, extra, expected):
    assert expected in refused(["class-sensitivity", "--model", "mini_resnet"] + extra, capsys)


@pytest.mark.parametrize("argv, expected", [
    (POINTING + ["--methods", "normgrad_conv", "--layers", ""], ["'normgrad_conv'", "the network input"]),
    (POINTING + ["--methods", "normgrad", "normgrad_conv", "--layers", "features.5", "features.8"],
     ["'normgrad_conv'", "'features.8' is ReLU"]),
    (POINTING + ["--methods", "normgrad_conv"], ["the network input", "mini_vgg's preset"]),  # the preset's input
    (POINTING + ["--methods", "normgrad_conv", "--merge"], ["the network input"]),  # even a merge computes nothing
    (["class-sensitivity", "--model", "mini_resnet", "--methods", "normgrad_conv", "--layers", "layer1.0.conv1",
      "layer2"], ["'layer2' is Sequential"]),
    (["class-sensitivity", "--model", "mini_resnet", "--methods", "normgrad_conv"],  # the preset, less its input
     ["'layer1' is Sequential", "mini_resnet's preset"]),
])
def test_a_method_that_cannot_run_at_a_layer_exits_2_before_any_work(no_compute, capsys, tmp_path, argv, expected):
    """Methods × layers are checked with the other arguments, by the library's own rule (the error
    :func:`revisal.saliency` gives), not after the data was read and the layer weights computed."""
    err = refused(argv + ["--cache-root", str(tmp_path)], capsys)
    assert "--methods" in err and "uses the layer's own weights" in err
    for text in expected:
        assert text in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [
    POINTING + ["--methods", "normgrad_conv", "grad_cam", "--layers", "features.5", "features.10"],
    ["class-sensitivity", "--model", "mini_resnet", "--methods", "normgrad_conv", "--layers", "layer1.0.conv1"],
])
def test_a_method_at_conv_layers_passes_the_check(no_compute, tmp_path, argv):
    with pytest.raises(AssertionError, match="reached a data/compute step"):
        cli.main(argv + ["--cache-root", str(tmp_path)])


def test_the_command_line_and_saliency_share_one_rule():
    from reproduction.checks import methods_fit_layers

    zoo = load("mini_vgg")
    x = torch.rand(1, 3, 32, 32)
    for layer in ("", "features.8", "features.4"):
        with pytest.raises(ValueError) as library:
            revisal_saliency(zoo.model, x, 0, [layer], ["normgrad_conv"])
        with pytest.raises(ValueError) as ours:
            methods_fit_layers("mini_vgg", ["normgrad_conv"], [layer])
        assert str(ours.value) == str(library.value)


@pytest.mark.parametrize("combinations", [["--no-combinations"], []])
def test_merge_before_the_shards_ran_fails(tmp_path, capsys, combinations):
    """Used to print 'parts still missing' and exit 0."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(POINTING + ["--methods", "grad_cam", "--merge", "--cache-root", str(tmp_path)] + combinations)
    assert exit_.value.code not in (0, None)
    assert "missing" in str(exit_.value.code) or "not in" in str(exit_.value.code)


def run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in TORCHRUN}
    environ.update(env, PYTHONPATH=str(ROOT) + os.pathsep + environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "reproduction", *args], capture_output=True, text=True,
                          env=environ, timeout=300, cwd=ROOT)


def test_exit_statuses_seen_by_a_shell(tmp_path):
    """The statuses a scheduler sees: 2 for a rank outside the world, 1 for a premature merge."""
    out = run_cli(POINTING + ["--cache-root", str(tmp_path)], RANK="3", WORLD_SIZE="2")
    assert out.returncode == 2 and "RANK=3, WORLD_SIZE=2" in out.stderr
    out = run_cli(POINTING + ["--no-combinations", "--merge", "--cache-root", str(tmp_path)])
    assert out.returncode == 1 and "missing" in out.stderr


def test_a_testbed_cache_copied_under_another_key_is_regenerated(tmp_path):
    from reproduction import testbed

    kw = dict(n=3, cache_dir=tmp_path, workers=1, progress=False)
    val, test = testbed.load_split("val", **kw), testbed.load_split("test", **kw)
    files = {split: sorted(tmp_path.glob(f"{split}-*")) for split in ("val", "test")}
    for src, dst in zip(files["val"], files["test"]):  # the val split's npz and json under the test split's names
        shutil.copy(src, dst)
    again = testbed.load_split("test", **kw)
    np.testing.assert_array_equal(again.pixels(range(3)), test.pixels(range(3)))
    assert not np.array_equal(again.pixels(range(3)), val.pixels(range(3)))
