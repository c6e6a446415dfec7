"""``python -m revisal explain``: the shipped EfficientNet-Lite0 on a real photo, a random-weight
torchvision model loaded with ``--weights``, a user's own model file, and clear errors."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import revisal
from revisal.__main__ import main
from revisal.data.labels import IMAGENET_CLASSES
from revisal.data.transforms import IMAGENET_NORMALIZE
from revisal.explain import WeightsNotFoundError, image_paths, output_names, read_image
from revisal.models import load as load_model


@pytest.fixture
def photo_dir(tmp_path):
    import skimage.data

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(skimage.data.chelsea()).save(folder / "chelsea.png")
    Image.fromarray(skimage.data.coffee()).save(folder / "sub" / "coffee.jpg")
    Image.fromarray(skimage.data.astronaut()).save(folder / "sub" / "chelsea.webp")  # same stem, other format
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_efficientnet_lite0_explains_the_cat(tmp_path, photo_dir, capsys):
    """The shipped ImageNet weights call skimage's chelsea a cat, and the CLI writes the grid figure,
    the maps and a sidecar that says what they are."""
    out = tmp_path / "out"
    rc = main(["explain", str(photo_dir / "chelsea.png"), "--model", "efficientnet_lite0", "--layers", "blocks.5",
               "bn2", "--methods", "normgrad", "grad_cam", "--out", str(out), "--no-progress", "--pdf"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[0]
    assert "1. tiger cat" in line and line.count(" · ") == 4  # five classes
    assert {p.name for p in out.iterdir()} == {"chelsea.png", "chelsea.pdf", "chelsea.npy", "chelsea.json",
                                              "explanations.csv"}
    meta = json.loads((out / "chelsea.json").read_text())
    assert meta["target"] == {"index": 282, "name": "tiger cat"}
    assert meta["maps"]["methods"] == ["normgrad", "grad_cam"] and meta["maps"]["layers"] == ["blocks.5", "bn2"]
    assert meta["maps"]["layer_resolution"] == {"blocks.5": [7, 7], "bn2": [7, 7]}
    assert sum(t["probability"] for t in meta["top5"]) <= 1
    maps = np.load(out / "chelsea.npy")
    assert maps.shape == (2, 2, 224, 224) and maps.dtype == np.float32
    assert (maps >= 0).all() and (maps.reshape(4, -1).max(1) > 0).all()  # both methods are non-negative
    assert Image.open(out / "chelsea.png").size[0] > 500


def _resnet18_weights(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18_random.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_torchvision_weights_file_folder_batches(tmp_path, photo_dir, capsys):
    """A random-weight resnet18 saved to disk and loaded with --weights: every image of a folder
    (recursively, any format) is explained in batches; the input-layer gradient map equals
    max_k |∂z_t/∂x_k| from autograd on an independently built copy of the model."""
    model, weights = _resnet18_weights(tmp_path)
    out = tmp_path / "out"
    rc = main(["explain", str(photo_dir), "--model", "torchvision:resnet18", "--weights", str(weights),
               "--layers", "", "layer3", "--methods", "gradient", "normgrad", "--batch-size", "2",
               "--out", str(out), "--no-progress", "--maps-only"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 3  # notes.txt skipped
    paths = image_paths([photo_dir])
    names = output_names(paths)
    assert sorted(names) == ["chelsea_png", "chelsea_webp", "coffee"]
    for path, name in zip(paths, names):
        meta = json.loads((out / f"{name}.json").read_text())
        x = IMAGENET_NORMALIZE(read_image(path, 224))[None].requires_grad_(True)
        logits = model(x)
        target = int(logits.argmax())
        assert meta["target"]["index"] == target
        probs = logits.softmax(-1)[0].detach()
        assert [t["index"] for t in meta["top5"]] == probs.topk(5).indices.tolist()
        (grad,) = torch.autograd.grad(logits[0, target], x)
        expected = grad[0].abs().amax(0).numpy()
        got = np.load(out / f"{name}.npy")[0, 0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * float(np.abs(expected).max()))


def test_user_model_from_module_path(tmp_path, photo_dir, monkeypatch, capsys):
    """``module.path:callable`` builds the user's model; --classes names its outputs, --target picks
    one by name, --list-layers marks real convs; the model comes back unchanged."""
    pkg = tmp_path / "usercode"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        MODEL = None

        def build():
            global MODEL
            torch.manual_seed(3)
            MODEL = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
            return MODEL
    """))
    (tmp_path / "names.txt").write_text("red\ngreen\nblue\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = main(["explain", "--model", "usercode.nets:build", "--size", "32", "--classes", str(tmp_path / "names.txt"),
               "--list-layers"])
    assert rc == 0
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line for line in listing.splitlines()[2:]}
    assert rows["0"].split()[3:] == ["nchw", "real", "preset"] and rows["2"].split()[2:5] == ["8×15×15", "nchw", "real"]
    assert rows["1"].split()[3:] == ["nchw"]  # the ReLU: explainable, not a real layer
    assert rows["4"].split()[2] == "8×1×1"  # the pool's output is still a (1×1) feature map
    assert "5" not in rows and "6" not in rows  # Flatten's and the Linear's are not
    out = tmp_path / "out"
    rc = main(["explain", str(photo_dir / "sub" / "coffee.jpg"), "--model", "usercode.nets:build", "--size", "32",
               "--classes", str(tmp_path / "names.txt"), "--target", "blue", "--layers", "2", "--methods",
               "normgrad_conv", "--out", str(out), "--no-progress"])
    assert rc == 0
    meta = json.loads((out / "coffee.json").read_text())
    assert meta["target"] == {"index": 2, "name": "blue"}
    assert {t["name"] for t in meta["top5"]} == {"red", "green", "blue"}
    assert np.load(out / "coffee.npy").shape == (1, 1, 32, 32)
    # meta-saliency through the CLI equals revisal.saliency with a MetaStep on the same input
    rc = main(["explain", str(photo_dir / "sub" / "coffee.jpg"), "--model", "usercode.nets:build", "--size", "32",
               "--classes", str(tmp_path / "names.txt"), "--target", "2", "--layers", "2", "--methods", "normgrad",
               "--meta", "0.01", "--out", str(tmp_path / "meta"), "--no-progress"])
    assert rc == 0
    model = sys.modules["usercode.nets"].MODEL
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = IMAGENET_NORMALIZE(read_image(photo_dir / "sub" / "coffee.jpg", 32))[None]
    expected = revisal.saliency(model, x, 2, ["2"], ["normgrad"], meta=revisal.MetaStep(lr=0.01))
    plain = revisal.saliency(model, x, 2, ["2"], ["normgrad"])
    expected = expected.resized((32, 32))["normgrad", "2"][0, 0].numpy()
    got = np.load(tmp_path / "meta" / "coffee.npy")[0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * float(np.abs(expected).max()))
    assert not np.allclose(got, plain.resized((32, 32))["normgrad", "2"][0, 0].numpy(), rtol=1e-3)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    zoo = load_model("usercode.nets:build")
    assert zoo.model is not model  # built afresh on each load
    assert not any(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("argv, message", [
    (["--model", "efficientnet_lit0"], "did you mean ['efficientnet_lite0'"),
    (["--model", "torchvision:resnet81"], "torchvision has no model 'resnet81'"),
    (["--model", "no_such_module_xyz:build"], "cannot import 'no_such_module_xyz'"),
    (["--model", "efficientnet_lite0", "--layers", "blocks.55"], "not a module of this model"),
    (["--model", "efficientnet_lite0", "--target", "tiger kat"], "did you mean ['tiger cat'"),
    (["--model", "explain_fixtures:tiny", "--size", "16", "--target", "3"], "index 3 out of range for 3 classes"),
    (["--model", "explain_fixtures:tiny", "--size", "16", "--methods", "normgrd"], "unknown method 'normgrd'"),
    (["--model", "efficientnet_lite0", "--weights", "/nonexistent/w.pth"], "is not a file"),
])
def test_bad_arguments_are_named(tmp_path, photo_dir, capsys, argv, message):
    rc = main(["explain", str(photo_dir / "chelsea.png"), "--out", str(tmp_path / "o"), "--no-progress", *argv])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_missing_weights_say_how_to_get_them(tmp_path, photo_dir, monkeypatch, capsys):
    """Published weights not on disk: no download, an error naming --download and --weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    with pytest.raises(WeightsNotFoundError, match="--download.*--weights FILE"):
        load_model("torchvision:resnet18")
    assert not (tmp_path / "empty_hub").exists()
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    with pytest.raises(WeightsNotFoundError, match="not in the Hugging Face cache.*--download"):
        load_model("timm:resnet18")
    assert not (tmp_path / "empty_hf").exists()
    rc = main(["explain", str(photo_dir), "--model", "vgg16", "--out", str(tmp_path / "o")])
    assert rc == 2 and "--download" in capsys.readouterr().err


def test_folder_and_argument_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["explain", str(tmp_path / "empty"), "--model", "efficientnet_lite0", "--out", str(tmp_path / "o")])
    assert rc == 2 and "holds no image" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"not a png")
    rc = main(["explain", str(tmp_path / "bad.png"), "--model", "efficientnet_lite0", "--out", str(tmp_path / "o"),
               "--no-progress"])
    assert rc == 2 and "not an image Pillow can read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explain", str(tmp_path / "bad.png"), "--model", "efficientnet_lite0", "--meta", "-1",
              "--out", str(tmp_path / "o")])
    assert "--meta" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explain", str(tmp_path / "bad.png"), "--model", "efficientnet_lite0"])
    assert "--out" in capsys.readouterr().err


def test_weights_that_do_not_fit_are_refused(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="does not fit this model"):
        load_model("torchvision:resnet34", weights=tmp_path / "r18.pth")


def test_timm_published_heads_are_named_from_timms_config():
    """timm's pretrained config says which label set a head was trained on: ImageNet-1k's names for
    an ImageNet-1k head, numbered classes for a head of another width it cannot name."""
    import timm

    from revisal.models.loading import _timm_classes

    assert _timm_classes(timm.create_model("resnet18", pretrained=False)) == list(IMAGENET_CLASSES)
    assert _timm_classes(timm.create_model("resnet18", pretrained=False, num_classes=7)) == [f"class {i}" for i in range(7)]


def test_timm_model_with_weights_file(tmp_path, photo_dir, capsys):
    """timm:<name> with a state dict on disk: timm's own preprocessing config; the file says nothing
    of its classes, so they are numbered (ImageNet's names are not attached to any 1000-way head)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "timm_r18.pth")
    zoo = load_model("timm:resnet18", weights=tmp_path / "timm_r18.pth", input_size=64)
    assert zoo.classes[282] == "class 282" and zoo.normalize.mean == tuple(model.pretrained_cfg["mean"])
    named = load_model("timm:resnet18", weights=tmp_path / "timm_r18.pth", input_size=64,
                       classes=list(IMAGENET_CLASSES))
    assert named.classes[282] == "tiger cat"
    assert all(torch.equal(a, b) for a, b in zip(zoo.model.state_dict().values(), model.state_dict().values()))
    rc = main(["explain", str(photo_dir / "chelsea.png"), "--model", "timm:resnet18", "--weights",
               str(tmp_path / "timm_r18.pth"), "--size", "64", "--layers", "layer4", "--methods", "grad_cam",
               "--out", str(tmp_path / "o"), "--no-progress", "--maps-only"])
    assert rc == 0 and (tmp_path / "o" / "chelsea.npy").is_file()


def test_class_names_follow_the_model_output(tmp_path, monkeypatch):
    """A model whose head is a conv (no nn.Linear): its 10 outputs are named by index; a class list
    of another length, or a model that does not give [N, K] scores, is refused."""
    pkg = tmp_path / "convhead"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from torch import nn

        def build():
            return nn.Sequential(nn.Conv2d(3, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def bad():
            return nn.Conv2d(3, 4, 3)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    zoo = load_model("convhead:build", input_size=16)
    assert zoo.classes == [f"class {i}" for i in range(10)] and zoo.model.classes == zoo.classes
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match="3 class names for a model with 10 outputs"):
        load_model("convhead:build", input_size=16, classes=tmp_path / "three.txt")
    with pytest.raises(ValueError, match=r"expected class scores \[N, K\]"):
        load_model("convhead:bad", input_size=16)


@pytest.mark.parametrize("name, blocks, grid", [
    ("vit_tiny_patch16_224", ["blocks.0", "blocks.3", "blocks.7", "blocks.10"], (14, 14)),  # of 0…10, not 11
    ("swin_tiny_patch4_window7_224", ["layers.0", "layers.1", "layers.2", "layers.3"], (56, 56)),
])  # grid: the first block's map
def test_explain_a_timm_transformer_with_a_weights_file(tmp_path, photo_dir, capsys, name, blocks, grid):
    """--list-layers needs the architecture only; the run reads the weights file, picks one block per
    stage (--layers auto) and writes maps at the input size, as for a CNN."""
    import timm

    assert main(["explain", "--model", f"timm:{name}", "--list-layers"]) == 0
    listing = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert listing[blocks[0]][3] == ("tokens" if "vit" in name else "nhwc") and "preset" in listing[blocks[0]]
    torch.manual_seed(0)
    weights = tmp_path / "weights.pth"
    torch.save(timm.create_model(name, pretrained=False).state_dict(), weights)
    out = tmp_path / "out"
    rc = main(["explain", str(photo_dir / "sub" / "coffee.jpg"), "--model", f"timm:{name}", "--weights", str(weights),
               "--layers", "auto", "--methods", "grad_cam", "normgrad", "--out", str(out), "--no-progress"])
    assert rc == 0
    meta = json.loads((out / "coffee.json").read_text())
    assert meta["maps"]["layers"] == blocks
    maps = np.load(out / "coffee.npy")
    assert maps.shape == (2, 4, 224, 224) and np.isfinite(maps).all() and maps[1].max() > 0
    assert tuple(meta["maps"]["layer_resolution"][blocks[0]]) == grid
