"""The API contract: one pass, model state untouched (also on error), batches, determinism."""

from __future__ import annotations

import copy

import pytest
import torch
from model_state import assert_same_state, snapshot
from torch import nn

import revisal
from conftest import SHARED_MODULE

LAYERS = ["", "stem", "bn", "dilated", "same", "point"]
METHODS = list(revisal.DEFAULT_METHODS)
@pytest.fixture
def messy(tiny, tiny_images):
    """A model in the state users leave them in: training mode (one submodule in eval), some
    parameters frozen, a user hook attached, stale .grad fields."""
    model = tiny.train()
    model.point.eval()
    model.stem.bias.requires_grad_(False)
    model(tiny_images)[:, 0].sum().backward()
    calls = []
    model.same.register_forward_hook(lambda m, a, o: calls.append(1))
    return model


def test_state_unchanged_after_success(messy, tiny_images):
    before = snapshot(messy)
    revisal.saliency(messy, tiny_images, 1, LAYERS, METHODS)
    revisal.saliency(messy, tiny_images, 1, ["down", "depthwise"], ["normgrad_conv"])
    assert_same_state(before, snapshot(messy))


@pytest.mark.parametrize(
    "failure",
    ["objective raises", "target out of range", "forward raises", "shared module", "not a feature map"],
)
def test_state_unchanged_after_failure(messy, tiny_images, failure):
    model, layers, target = messy, LAYERS, 1
    if failure == "objective raises":
        def target(out):
            raise RuntimeError("boom")
    elif failure == "target out of range":
        target = 5
    elif failure == "forward raises":
        def explode(m, a, o):
            raise RuntimeError("boom")
        handle = model.point.register_forward_hook(explode)
    elif failure == "shared module":
        layers = ["stem", SHARED_MODULE]
    elif failure == "not a feature map":
        layers = ["stem", "head"]
    before = snapshot(model)
    with pytest.raises((RuntimeError, ValueError)):
        revisal.saliency(model, tiny_images, target, layers, METHODS)
    assert_same_state(before, snapshot(model))
    if failure == "forward raises":
        handle.remove()


def test_one_forward_one_backward_no_weight_gradients(tiny, tiny_images, monkeypatch):
    forwards, grads = [], []
    frozen_during_forward = []

    def count(module, args):
        forwards.append(1)
        frozen_during_forward.append(not any(p.requires_grad for p in module.parameters()))

    tiny.register_forward_pre_hook(count)
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        grads.append(1)
        return real_grad(*args, **kwargs)

    def no_backward(*args, **kwargs):
        raise AssertionError("torch.autograd.backward must not be used (it accumulates .grad)")

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    monkeypatch.setattr(torch.autograd, "backward", no_backward)
    maps = revisal.saliency(tiny, tiny_images, [0, 1, 2], LAYERS, METHODS)
    assert len(maps) == len(LAYERS) * len(METHODS)
    assert len(forwards) == 1 and len(grads) == 1
    assert frozen_during_forward == [True]  # no graph is recorded for weight gradients
    assert all(p.grad is None for p in tiny.parameters())

    forwards.clear(), grads.clear()
    revisal.saliency(tiny, tiny_images, 0, LAYERS, METHODS, batch_size=2)
    assert len(forwards) == 2 and len(grads) == 2  # one pass per chunk


def test_inplace_relu_gives_same_maps(tiny, tiny_images):
    out_of_place = copy.deepcopy(tiny)
    out_of_place.relu = nn.ReLU(inplace=False)
    out_of_place.act = nn.ReLU(inplace=False)
    a = revisal.saliency(tiny, tiny_images, 2, LAYERS, METHODS)
    b = revisal.saliency(out_of_place, tiny_images, 2, LAYERS, METHODS)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_batch_equals_single_calls_and_chunks(tiny, tiny_images):
    """In float64: convolutions over batches of 3, 2 and 1 round differently in float32, by an amount
    that depends on the CPU; in float64 they agree to ~1e-15, while a map that depended on the other
    images of its batch (BatchNorm in training mode, a wrong reduction) would be off by O(1)."""
    model, x = tiny.double(), tiny_images.double()
    ids = torch.tensor([4, 0, 2])
    batch = revisal.saliency(model, x, ids, LAYERS, METHODS)
    chunked = revisal.saliency(model, x, ids, LAYERS, METHODS, batch_size=2)
    for i in range(len(ids)):
        single = revisal.saliency(model, x[i : i + 1], int(ids[i]), LAYERS, METHODS)
        for key in batch:
            assert batch[key].dtype == torch.float64
            torch.testing.assert_close(batch[key][i : i + 1], single[key], rtol=1e-10, atol=1e-10 * float(single[key].abs().max()))
    for key in batch:
        torch.testing.assert_close(batch[key], chunked[key], rtol=1e-10, atol=1e-10 * float(batch[key].abs().max()))


def test_deterministic_on_cpu(tiny, tiny_images):
    a = revisal.saliency(tiny, tiny_images, 3, LAYERS, METHODS)
    b = revisal.saliency(tiny, tiny_images, 3, LAYERS, METHODS)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_callable_target_equals_logit_target(tiny, tiny_images):
    by_id = revisal.saliency(tiny, tiny_images, [1, 2, 3], LAYERS, METHODS)
    by_fn = revisal.saliency(tiny, tiny_images, lambda out: out[:, 1:4].diagonal(), LAYERS, METHODS)
    for key in by_id:
        torch.testing.assert_close(by_id[key], by_fn[key])


def test_callable_objective_is_used(tiny, tiny_images):
    """A log-softmax objective differs from the raw logit (the gradient includes the softmax)."""
    logit = revisal.saliency(tiny, tiny_images, 1, ["same"], ["linear_approx"])
    logp = revisal.saliency(tiny, tiny_images, lambda out: out.log_softmax(1)[:, 1], ["same"], ["linear_approx"])
    assert not torch.allclose(logit["linear_approx", "same"], logp["linear_approx", "same"])


def test_works_under_no_grad_and_inference_mode(tiny, tiny_images):
    want = revisal.saliency(tiny, tiny_images, 1, LAYERS, METHODS)
    with torch.no_grad():
        a = revisal.saliency(tiny, tiny_images, 1, LAYERS, METHODS)
    with torch.inference_mode():
        b = revisal.saliency(tiny, tiny_images.clone(), 1, LAYERS, METHODS)
    for key in want:
        assert torch.equal(want[key], a[key]) and torch.equal(want[key], b[key])


def test_autocast_gives_float32_maps_close_to_fp32(tiny, tiny_images):
    want = revisal.saliency(tiny, tiny_images, 1, ["same", "point"], ["normgrad", "linear_approx"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = revisal.saliency(tiny, tiny_images, 1, ["same", "point"], ["normgrad", "linear_approx"])
    for key in want:
        assert got[key].dtype == torch.float32
        corr = torch.corrcoef(torch.stack([got[key].flatten(), want[key].flatten()]))[0, 1]
        assert corr > 0.95


def test_user_method_pairs(tiny, tiny_images):
    """Any (site, aggregation) pair, by tuple or Method, alongside registered names."""
    maps = revisal.saliency(tiny, tiny_images, 0, ["same"], ["normgrad", ("conv3x3", "filter_norm"), revisal.Method("mine", "bias", "norm")])
    assert maps.methods == ["normgrad", "conv3x3+filter_norm", "mine"]
    assert maps["mine", "same"].shape == (3, 1, 8, 8)


def test_register_method(tiny, tiny_images):
    try:
        revisal.register_method("test_only_scale_norm", "scale", "norm")
        with pytest.raises(ValueError, match="already registered"):
            revisal.register_method("test_only_scale_norm", "scale", "norm")
        maps = revisal.saliency(tiny, tiny_images, 0, ["same"], ["test_only_scale_norm"])
        assert ("test_only_scale_norm", "same") in maps
    finally:
        revisal.METHODS.pop("test_only_scale_norm", None)


def test_maps_object(tiny, tiny_images):
    maps = revisal.saliency(tiny, tiny_images, 0, ["", "same"], ["normgrad", "gradient"])
    assert maps.methods == ["normgrad", "gradient"] and maps.layers == ["", "same"]
    assert maps["normgrad", "same"].shape == (3, 1, 8, 8)
    up = maps.resized((16, 16))
    assert isinstance(up, revisal.SaliencyMaps) and up["normgrad", "same"].shape == (3, 1, 16, 16)
    assert torch.equal(up["normgrad", ""], maps["normgrad", ""])  # already at that size
    assert up.stack("normgrad").shape == (3, 2, 16, 16)
    with pytest.raises(ValueError, match="resized"):
        maps.stack("normgrad")
    assert maps.numpy("gradient", "").shape == (3, 16, 16)
    with pytest.raises(KeyError, match="method 'nope'"):
        maps["nope", "same"]
    with pytest.raises(KeyError, match="layer 'x'"):
        maps["normgrad", "x"]


# Every bad input raises the documented error, naming the argument.
BAD = [
    ("unknown layer", dict(layers=["sam"]), ValueError, r"layers: 'sam'.*did you mean \['same'"),
    ("empty layers", dict(layers=[]), ValueError, "layers: empty"),
    ("layers not str", dict(layers=[3]), TypeError, "layers"),
    ("unknown method", dict(methods=["normgard"]), ValueError, r"methods: unknown method 'normgard'.*normgrad"),
    ("empty methods", dict(methods=[]), ValueError, "methods: empty"),
    ("conv method at non-conv", dict(layers=["bn"], methods=["normgrad_conv"]), ValueError, "not an nn.Conv2d"),
    ("conv method at input", dict(layers=[""], methods=["normgrad_conv"]), ValueError, "network input"),
    ("rank 3", dict(images=torch.zeros(3, 16, 16)), ValueError, r"images: expected rank 4.*unsqueeze"),
    ("int dtype", dict(images=torch.zeros(1, 3, 16, 16, dtype=torch.uint8)), TypeError, "images: expected a floating-point"),
    ("not a tensor", dict(images=[[0.0]]), TypeError, "images"),
    ("NaN", dict(images=torch.full((1, 3, 16, 16), float("nan"))), ValueError, "images: contains NaN"),
    ("Inf", dict(images=torch.full((1, 3, 16, 16), float("inf"))), ValueError, "images: contains NaN or Inf"),
    ("target too big", dict(target=5), ValueError, "target: class id 5 out of range"),
    ("target negative", dict(target=-1), ValueError, "target: class ids must be ≥ 0"),
    ("target length", dict(target=[0, 1]), ValueError, "target: 2 class ids for a batch of 3"),
    ("target float", dict(target=torch.tensor([0.0, 1.0, 2.0])), TypeError, "target: expected integer"),
    ("target bool", dict(target=True), TypeError, "target"),
    ("target callable shape", dict(target=lambda out: out), ValueError, r"target: the callable must return a Tensor of shape \[3\]"),
    ("batch_size", dict(batch_size=0), ValueError, "batch_size"),
    ("model", dict(model="resnet"), TypeError, "model: expected a torch.nn.Module"),
    ("shared module", dict(layers=[SHARED_MODULE]), ValueError, "runs more than once"),
    ("not a feature map", dict(layers=["head"]), ValueError, r"layers: 'head' outputs shape \(3, 5\)"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_clear_error(tiny, tiny_images, case):
    _, override, error, pattern = case
    kwargs = dict(model=tiny, images=tiny_images, target=0, layers=["same"], methods=["normgrad"])
    kwargs.update(override)
    with pytest.raises(error, match=pattern):
        revisal.saliency(**kwargs)


def test_training_mode_model_is_explained_in_eval_mode(tiny, tiny_images):
    """BatchNorm uses its running statistics (so a sample's map does not depend on its batch)."""
    want = revisal.saliency(tiny, tiny_images, 1, LAYERS, METHODS)
    tiny.train()
    got = revisal.saliency(tiny, tiny_images, 1, LAYERS, METHODS)
    assert tiny.training
    for key in want:
        assert torch.equal(want[key], got[key])
