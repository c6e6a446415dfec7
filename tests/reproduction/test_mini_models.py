"""The mini models: architecture contracts, BN folding, deterministic training, shipped weights."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import revisal
from reproduction import testbed
from reproduction import train as training
from reproduction.classification import mean_average_precision
from reproduction.mini_models import build, export, fold_batch_norm
from reproduction.zoo import PRESETS
from revisal.models import load


def test_layer_presets_and_resolutions():
    for name in ("mini_vgg", "mini_resnet"):
        model = build(name, 12).eval()
        sizes = {}

        def record(module, args, output, layer):
            sizes[layer] = output.shape[-1]

        for layer in PRESETS[name].layers[1:]:
            dict(model.named_modules())[layer].register_forward_hook(lambda m, a, o, k=layer: record(m, a, o, k))
        model(torch.zeros(1, 3, 64, 64))
        assert list(sizes.values()) == [32, 16, 8, 8]  # no downsampling into the last stage
        assert build(name, 12, last_stride=2)(torch.zeros(1, 3, 64, 64)).shape == (1, 12)
    vgg = build("mini_vgg", 12)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in vgg.modules())
    assert all(isinstance(m, (torch.nn.Conv2d, torch.nn.ReLU, torch.nn.MaxPool2d)) for m in vgg.features)


def test_fold_batch_norm_preserves_the_function():
    torch.manual_seed(0)
    trained = build("mini_vgg", 12, for_training=True)
    opt = torch.optim.SGD(trained.parameters(), lr=0.05)
    for _ in range(3):  # move BN statistics and affine parameters away from their defaults
        trained.train()
        loss = trained(torch.randn(8, 3, 64, 64)).square().mean()
        opt.zero_grad(), loss.backward(), opt.step()
    trained.eval()
    plain = fold_batch_norm(trained)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    # Compared in float64 (a float32 forward through folded and unfolded layers rounds differently,
    # by CPU). The one float32 step left is the folding itself: elementwise ×, ÷, √, correctly rounded
    # and so the same on every CPU, each folded weight within 2⁻²⁴ relative of W·γ/√(σ²+ε). Through
    # 6 layers that moves the logits by ~3e-7 of their scale on any machine; a wrong fold, by > 1e-2.
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    want = copy.deepcopy(trained).double()(x)
    torch.testing.assert_close(copy.deepcopy(plain).double()(x), want, rtol=0, atol=1e-5 * float(want.abs().max()))
    with pytest.raises(ValueError, match="BatchNorm"):
        fold_batch_norm(build("mini_vgg", 12))


def test_training_is_deterministic(tmp_path):
    cfg = dict(epochs=1, batch_size=16, train_size=64, val_size=32, test_size=32, threads=1)
    a = training.train(training.TrainConfig(model="mini_resnet", out=str(tmp_path / "a"), **cfg), progress=False)
    b = training.train(training.TrainConfig(model="mini_resnet", out=str(tmp_path / "b"), **cfg), progress=False)
    assert a["epochs"][0]["sha256"] == b["epochs"][0]["sha256"]
    c = training.train(training.TrainConfig(model="mini_resnet", out=str(tmp_path / "c"), seed=1, **cfg), progress=False)
    assert c["epochs"][0]["sha256"] != a["epochs"][0]["sha256"]
    manifest = json.loads((tmp_path / "a" / "mini_resnet" / "manifest.json").read_text())
    assert manifest["epochs"][0]["file"] == "epoch_01.pt" and "test_map" in manifest
    # any epoch checkpoint loads, verified against the manifest
    zoo = load("mini_resnet", checkpoint=tmp_path / "a" / "mini_resnet" / "epoch_01.pt")
    assert zoo.classes == list(testbed.CLASSES)
    ckpt = tmp_path / "a" / "mini_resnet" / "epoch_01.pt"
    raw = bytearray(ckpt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one corrupted byte
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="sha256"):
        load("mini_resnet", checkpoint=tmp_path / "a" / "mini_resnet" / "epoch_01.pt")


def test_the_single_label_objective_trains_with_cross_entropy(tmp_path):
    """objective="largest" optimises another loss than the default BCE (the same data, order and
    initialisation give other weights), is recorded in the manifest, and an unknown one is refused
    before any training."""
    cfg = dict(epochs=1, batch_size=16, train_size=16, val_size=16, test_size=16, threads=1, augment=False)
    single = training.train(training.TrainConfig(model="mini_resnet", objective="largest", out=str(tmp_path / "a"), **cfg),
                            progress=False)
    multi = training.train(training.TrainConfig(model="mini_resnet", out=str(tmp_path / "b"), **cfg), progress=False)
    assert single["epochs"][0]["sha256"] != multi["epochs"][0]["sha256"]
    assert single["config"]["objective"] == "largest"
    with pytest.raises(ValueError, match="objective"):
        training.train(training.TrainConfig(model="mini_resnet", objective="softmax", out=str(tmp_path / "c"), **cfg),
                       progress=False)


def test_shipped_epochs_are_the_runs_epochs_in_float16(tmp_path, monkeypatch):
    """``--ship-epochs`` writes every ``SHIP_EVERY``-th epoch of a run and its last, each tensor the
    float16 rounding of the run's, with a manifest that ``load`` verifies; the dynamics then take them
    instead of training."""
    from reproduction import profiles as resolve

    cfg = training.TrainConfig(model="mini_resnet", epochs=3, batch_size=16, train_size=64, val_size=32, test_size=32,
                               threads=1, out=str(tmp_path / "run"))
    manifest = training.train(cfg, progress=False)
    monkeypatch.setattr(training, "WEIGHTS_DIR", tmp_path / "weights")
    folder = training.ship_epochs(manifest, every=2)
    assert folder == tmp_path / "weights" / "mini_resnet_epochs"
    shipped = json.loads((folder / "manifest.json").read_text())["epochs"]
    assert [e["epoch"] for e in shipped] == [2, 3]  # every second epoch, and the last
    assert sorted(p.name for p in folder.glob("*.pt")) == ["epoch_02.pt", "epoch_03.pt"]
    for entry in manifest["epochs"][1:]:
        trained = torch.load(tmp_path / "run" / "mini_resnet" / entry["file"], weights_only=True)["state_dict"]
        shipped_state = torch.load(folder / entry["file"], weights_only=True)["state_dict"]
        assert shipped_state.keys() == trained.keys()
        for k, v in trained.items():
            want = v.half() if v.is_floating_point() else v
            assert shipped_state[k].dtype == want.dtype and torch.equal(shipped_state[k], want), k
        zoo = load("mini_resnet", checkpoint=folder / entry["file"])  # verified against the shipped manifest
        assert all(p.dtype == torch.float32 for p in zoo.model.parameters())
        assert torch.equal(zoo.model.state_dict()["fc.weight"], trained["fc.weight"].half().float())
    again = training.ship_epochs(manifest, every=2)  # the same run gives the same bytes
    assert [training.digest_bytes((again / e["file"]).read_bytes()) for e in shipped] == [e["sha256"] for e in shipped]
    with pytest.raises(ValueError, match="every"):
        training.ship_epochs(manifest, every=0)
    monkeypatch.setattr(training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    overrides = {k: v for k, v in cfg.__dict__.items() if k not in ("model", "out")}
    checkpoints = resolve.training_checkpoints("mini_resnet", {"train": overrides})
    assert checkpoints == [folder / "epoch_02.pt", folder / "epoch_03.pt"]
    assert [training.epoch_of(c) for c in checkpoints] == [2, 3]
    # the run's record keeps every epoch, the ones not shipped too, for the trained and the shipped run alike
    for where in (folder / "epoch_02.pt", tmp_path / "run" / "mini_resnet" / "epoch_01.pt"):
        assert [(e["epoch"], e["train_map"], e["val_map"]) for e in training.run_history(where)] == \
            [(e["epoch"], e["train_map"], e["val_map"]) for e in manifest["epochs"]]
    with pytest.raises(FileNotFoundError, match="manifest"):
        training.run_history(tmp_path / "epoch_01.pt")
    with pytest.raises(ValueError, match="epoch_NN"):
        training.epoch_of("weights.pt")


@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_dynamics_follow_the_shipped_epochs_without_training(monkeypatch, seed):
    """Notebook 04's default config (no ``train`` overrides) resolves to the committed per-epoch
    checkpoints of each of its training seeds: ``make figures`` trains nothing, and every CPU
    explains the same weights."""
    from reproduction import profiles as resolve

    monkeypatch.setattr(training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    checkpoints = resolve.training_checkpoints("mini_resnet", {"train": None}, seed=seed)
    folder = training.shipped_epochs_dir("mini_resnet", seed or 0)
    assert folder.name == ("mini_resnet_epochs" if not seed else f"mini_resnet_epochs_seed{seed}")
    epochs = training.DYNAMICS["epochs"]
    assert [training.epoch_of(c) for c in checkpoints] == list(range(training.SHIP_EVERY, epochs + 1, training.SHIP_EVERY))
    assert checkpoints == [folder / f"epoch_{e:02d}.pt" for e in range(training.SHIP_EVERY, epochs + 1, training.SHIP_EVERY)]
    shipped = json.loads((folder / "manifest.json").read_text())
    default = training.TrainConfig(model="mini_resnet", seed=seed or 0, **training.DYNAMICS)
    assert shipped["dtype"] == "float16" and shipped["config"] == {k: v for k, v in default.__dict__.items() if k != "out"}
    for path in checkpoints:
        load("mini_resnet", checkpoint=path)  # each file matches its sha256
    assert sum(p.stat().st_size for p in checkpoints) < 9 * 2**20


def test_the_dynamics_run_overfits_its_finite_training_set():
    """Fig. 10 compares maps on seen and unseen scenes: in every shipped dynamics run the training
    top-1 accuracy ends above the validation one by a clear margin (the generalisation gap the paper's argument
    needs), and the training scenes notebook 04 explains are among those the run was trained on."""
    for seed in (0, 1, 2):
        manifest = json.loads((training.shipped_epochs_dir("mini_resnet", seed) / "manifest.json").read_text())
        last = manifest["epochs"][-1]
        assert manifest["config"]["train_size"] == training.DYNAMICS["train_size"] and not manifest["config"]["augment"]
        assert manifest["config"]["objective"] == "largest"  # cross-entropy, the loss of notebook 04's meta step
        assert last["train_top1"] - last["val_top1"] >= 0.05, (seed, last)  # top-1 for the largest object, its label


def test_train_help_documents_the_knobs(capsys):
    with pytest.raises(SystemExit):
        training.main(["--help"])
    text = capsys.readouterr().out
    for knob in ("--model", "--epochs", "--seed", "--lr", "--train-size", "--image-size", "--out"):
        assert knob in text


@pytest.mark.parametrize("name", ["mini_vgg", "mini_resnet"])
def test_shipped_weights_classify_the_testbed(name):
    """The committed weights are the trained ones: mAP on 400 fresh test scenes."""
    zoo = load(name)
    scenes = testbed.load_split("test", n=400, cache_dir=None, progress=False, workers=1)
    with torch.no_grad():
        scores = zoo.model(zoo.normalize(scenes.pixels(range(400))))
    assert mean_average_precision(scores, scenes.labels) >= 0.88


def test_three_lines_from_model_and_batch_to_maps_and_masks():
    zoo, scenes = load("mini_resnet"), testbed.load_split("test", n=8, cache_dir=None, progress=False, workers=1)
    maps = revisal.saliency(zoo.model, zoo.normalize(scenes.pixels(range(8))), scenes.labels.argmax(1), zoo.layers)
    masks = [scenes.class_mask(i, int(scenes.labels[i].argmax())) for i in range(8)]
    assert maps["selective_normgrad", "layer4"].shape == (8, 1, 8, 8) and masks[0].shape == (64, 64)


def test_export_returns_eval_copy():
    model = build("mini_resnet", 12).train()
    out = export(model)
    assert out is not model and not out.training and model.training
