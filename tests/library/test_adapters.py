"""Quantus and Captum adapters, checked against the real packages (test-only oracles): Captum's
LayerGradCam equals revisal's grad_cam through :class:`LayerAttribution` in float64, and Quantus's
pointing game runs on revisal's maps and agrees with :func:`reproduction.grid_cells.grid_hits`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import revisal
from conftest import TinyNet, oracle
from reproduction.grid_cells import cell_masks, grid_hits
from revisal.adapters import LayerAttribution, quantus_explain_func


def _tiny64() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().double().eval()


def _images(n: int, side: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("layer", ["same", "tall", "point"])
def test_captum_layer_gradcam_equals_ours_tinynet(layer):
    captum = oracle("captum.attr")
    model, x = _tiny64(), _images(3, 16)
    target = [0, 3, 4]
    theirs = captum.LayerGradCam(model, dict(model.named_modules())[layer]).attribute(
        x, target=target, relu_attributions=True)
    ours = LayerAttribution(model, layer, "grad_cam").attribute(x, target)
    assert ours.dtype == torch.float64 and ours.shape == theirs.shape
    scale = float(theirs.detach().abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12 * scale)


def test_captum_layer_gradcam_equals_ours_resnet18_module_layer():
    """A torchvision ResNet-18 (random, float64), the layer given as a module as in Captum."""
    captum = oracle("captum.attr")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).double().eval()
    x = _images(2, 64, seed=2)
    for layer in (model.layer2, model.layer3):
        theirs = captum.LayerGradCam(model, layer).attribute(x, target=[7, 401], relu_attributions=True)
        ours = LayerAttribution(model, layer, "grad_cam").attribute(x, [7, 401])
        scale = float(theirs.detach().abs().max())
        assert scale > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12 * scale)
        up = LayerAttribution(model, layer, "grad_cam").attribute(x, [7, 401], upsample=True)
        assert up.shape == (2, 1, 64, 64)


def test_layer_attribution_any_method_and_errors():
    model, x = _tiny64(), _images(2, 16)
    direct = revisal.saliency(model, x, [1, 2], ["point"], ["selective_normgrad"])["selective_normgrad", "point"]
    torch.testing.assert_close(LayerAttribution(model, "point", "selective_normgrad").attribute(x, [1, 2]), direct,
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="method"):
        LayerAttribution(model, "point", "normgrd")
    with pytest.raises(ValueError, match="not a submodule"):
        LayerAttribution(model, torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="target"):
        LayerAttribution(model, "point").attribute(x, None)


def _mosaic_batch(model, n: int, side: int):
    """Random inputs, each with a target class and a target cell of a 2×2 grid; maps that are not
    constant (Quantus and grid_hits differ only on constant maps)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 3, side, side, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 5, (n,), generator=g)
    cells = torch.randint(0, 4, (n,), generator=g).numpy()
    masks = cell_masks((side, side))[cells][:, None]
    return x, targets, cells, masks


@pytest.mark.parametrize("method, layer", [("normgrad", "point"), ("selective_normgrad", "same"),
                                           ("gradient", ""), ("linear_approx", "depthwise")])
def test_quantus_pointing_game_runs_on_our_maps(method, layer):
    quantus = oracle("quantus")
    model = _tiny64()
    x, targets, cells, masks = _mosaic_batch(model, 24, 16)
    kwargs = {"method": method, "layer": layer}
    scores = quantus.PointingGame(disable_warnings=True, display_progressbar=False)(
        model=model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=None, s_batch=masks.astype(float),
        explain_func=quantus_explain_func, explain_func_kwargs=kwargs, channel_first=True, device="cpu")
    maps = revisal.saliency(model, x, targets, [layer], [method]).resized((16, 16))[method, layer]
    flat = maps.flatten(1)
    assert bool((flat.max(1).values > flat.min(1).values).all())
    ours = grid_hits(maps, cells)
    np.testing.assert_array_equal(np.asarray(scores, dtype=bool), ours)
    assert 0 < ours.sum() < len(ours)  # a test that can fail both ways
    adapter = quantus_explain_func(model, x.numpy(), targets.numpy(), **kwargs)
    assert adapter.shape == (24, 1, 16, 16) and adapter.dtype == np.float32
    np.testing.assert_array_equal(adapter, maps.float().numpy())


def test_quantus_explain_func_meta_and_errors():
    model = _tiny64()
    x = _images(2, 16)
    meta = quantus_explain_func(model, x.numpy(), np.array([1, 2]), method="normgrad", layer="point", meta_lr=1e-2,
                                resize=False)
    direct = revisal.saliency(model, x, [1, 2], ["point"], ["normgrad"], meta=revisal.MetaStep(lr=1e-2))
    np.testing.assert_array_equal(meta, direct["normgrad", "point"].float().numpy())
    with pytest.raises(TypeError, match="unexpected keyword"):
        quantus_explain_func(model, x.numpy(), np.array([1, 2]), methd="normgrad")
    with pytest.raises(ValueError, match="inputs"):
        quantus_explain_func(model, x[0].numpy(), np.array([1]))
    with pytest.raises(ValueError, match="meta_lr"):
        quantus_explain_func(model, x.numpy(), np.array([1, 2]), meta_lr=-1.0)


def test_grid_hits_by_hand():
    """Cells in row-major order; a constant map is a miss; a tie between cells is a miss in each."""
    m = np.zeros((4, 1, 4, 4))
    m[0, 0, 0, 3] = 1  # top-right → cell 1
    m[1, 0, 3, 0] = 1  # bottom-left → cell 2
    m[2, 0, 0, 0] = m[2, 0, 3, 3] = 1  # a tie between cells 0 and 3
    # m[3] constant
    np.testing.assert_array_equal(grid_hits(m, [1, 2, 3, 0]), [True, True, False, False])
    np.testing.assert_array_equal(grid_hits(m, [0, 3, 0, 0]), [False, False, False, False])
    masks = cell_masks((5, 7))
    assert masks.sum(0).tolist() == np.ones((5, 7)).tolist()  # a partition, odd sides included
    with pytest.raises(ValueError, match="cells"):
        grid_hits(m, [0, 1, 2, 4])
    with pytest.raises(ValueError, match="grid"):
        grid_hits(m, [0, 1, 2, 3], grid=(2, 0))


_FLOAT_TARGETS = {
    "python float": 2.7, "integral python float": 2.0, "numpy float": np.float64(2.7), "list with a float": [2.7, 1],
    "float array": np.array([2.7, 1.0]), "integral float array": np.array([2.0, 1.0]),
    "float tensor": torch.tensor([2.7, 1.0]), "float64 0-d tensor": torch.tensor(2.0, dtype=torch.float64),
}


@pytest.mark.parametrize("target", list(_FLOAT_TARGETS.values()), ids=list(_FLOAT_TARGETS))
@pytest.mark.parametrize("adapter", ["quantus", "captum"])
def test_adapters_refuse_float_targets_as_saliency_does(adapter, target):
    """A float class id is never truncated (2.7 → class 2): both adapters refuse every float target,
    integral ones too, with the TypeError that :func:`revisal.saliency` gives for the same target."""
    model, x = _tiny64(), _images(2, 16)
    with pytest.raises(TypeError, match="target") as direct:
        revisal.saliency(model, x, target, ["point"], ["normgrad"])
    with pytest.raises(TypeError, match="target") as ours:
        if adapter == "quantus":
            quantus_explain_func(model, x.numpy(), target, layer="point")
        else:
            LayerAttribution(model, "point").attribute(x, target)
    assert str(ours.value) == str(direct.value)


@pytest.mark.parametrize("target", [np.int64(3), np.array(3), torch.tensor(3), 3], ids=["np.int64", "0-d array",
                                                                                         "0-d tensor", "int"])
def test_quantus_explain_func_one_integer_target_for_all(target):
    model, x = _tiny64(), _images(2, 16)
    ours = quantus_explain_func(model, x.numpy(), target, layer="point", resize=False)
    direct = revisal.saliency(model, x, [3, 3], ["point"], ["normgrad"])["normgrad", "point"]
    np.testing.assert_array_equal(ours, direct.float().numpy())


@pytest.mark.parametrize("adapter", ["quantus", "captum"])
def test_adapter_errors_name_the_argument_at_fault(adapter):
    """A meta-device model is the model's fault (``model``), never the inputs'; bad inputs name ``inputs``,
    the adapters' own argument name."""
    model, x = _tiny64(), _images(2, 16)
    meta = _tiny64().to("meta")
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    if adapter == "quantus":
        call = lambda m, inputs: quantus_explain_func(m, inputs.numpy() if not inputs.is_meta else inputs, [1, 2],
                                                      layer="point")
    else:
        call = lambda m, inputs: LayerAttribution(m, "point").attribute(inputs, [1, 2])
    with pytest.raises(ValueError, match=r"^model: .*meta device"):
        call(meta, x)
    with pytest.raises(ValueError, match=r"^inputs: .*NaN"):
        call(model, nan)
    with pytest.raises(ValueError, match=r"^inputs: .*meta device"):
        call(model, x.to("meta"))
