"""Hostile inputs and hostile models (issue 11): every call gives the right maps or refuses with a
clear error naming the argument, and the model and the caller's tensors come back untouched."""

from __future__ import annotations

import decimal
import fractions
import importlib
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import revisal

EVERYWHERE = [m for m in revisal.METHODS if m != "normgrad_conv"]  # built-in methods that work at any layer
RULE_METHODS = ["normgrad", "guided_backprop", "excitation_backprop"]  # three backward rules: three passes
INVASIVE = [m for m, spec in revisal.METHODS.items() if spec.rule.name != "plain"]  # a modified backward rule
BATCHINGS = [None, "loop", "vmap"]  # plain saliency, and meta-saliency computed both ways
LAYERS = ["", "conv1", "bn", "conv2", "conv3"]
CONVS = ["conv1", "conv2", "conv3"]


def meta_step(batching: str | None, lr: float = 1e-2):
    return None if batching is None else revisal.MetaStep(lr, batching=batching)


class Net(nn.Module):
    """conv → BN → ReLU → conv + residual → ReLU → max-pool → 1×1 conv → ReLU → global average pool
    → linear: every excitation-backprop rule (conv, batch norm, sum, average pool, linear)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(6, 8, 1)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def stem(self, x):
        return F.relu(self.bn(self.conv1(x)))

    def body(self, x):
        return F.relu(self.conv2(x) + x)

    def forward(self, x):
        x = self.body(self.stem(x))
        x = F.relu(self.conv3(self.pool(x)))
        return self.fc(self.avg(x).flatten(1))


def make(cls=Net, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return cls(**kwargs).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def assert_same_maps(got, want) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


# ---------------------------------------------------------------------------------------------
# §2.1 A model that writes to its input: every pass sees the caller's values, which stay untouched


class Mutating(Net):
    def forward(self, x):
        x.mul_(2)
        return super().forward(x)


class Doubling(Net):
    def forward(self, x):
        return super().forward(x * 2)


def is_slice_of(t: torch.Tensor, images: torch.Tensor) -> bool:
    return any(torch.equal(t, images[i : i + len(t)]) for i in range(len(images) - len(t) + 1))


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("layers", [["conv2"], ["", "conv2"]], ids=["no-input-layer", "input-layer"])
@pytest.mark.parametrize("batching", BATCHINGS)
def test_model_writing_to_its_input(images, batching, layers, batch_size):
    """The maps equal those of the same network computing ``x * 2`` out of place, and the caller's
    tensor is unchanged (before: multiplied by 8 with three rules, by 64 under vmap meta)."""
    mutating, doubling = make(Mutating), make(Doubling)
    seen = []
    if batching != "vmap":  # a hook that copies its input cannot run under vmap
        mutating.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    caller = images.clone()
    got = revisal.saliency(mutating, caller, 1, layers, RULE_METHODS, meta=meta_step(batching), batch_size=batch_size)
    assert torch.equal(caller, images)
    want = revisal.saliency(doubling, images, 1, layers, RULE_METHODS, meta=meta_step(batching), batch_size=batch_size)
    assert_same_maps(got, want)
    assert all(is_slice_of(s, images) for s in seen)


def test_other_entry_points_leave_the_callers_images_untouched(images):
    """layer_activations and class_sensitivity's logits pass run the model too: a model that writes
    to its input must neither change the caller's tensor nor see altered values."""
    from revisal.activations import layer_activations

    caller = images.clone()
    got = layer_activations(make(Mutating), caller, ["", "conv2"])
    assert torch.equal(caller, images)
    want = layer_activations(make(Doubling), images, ["", "conv2"])
    assert torch.equal(got[0], images) and torch.equal(got[1], want[1])
    got = revisal.metrics.class_sensitivity(make(Mutating), caller, ["conv2"], ["normgrad"])
    assert torch.equal(caller, images)
    want = revisal.metrics.class_sensitivity(make(Doubling), images, ["conv2"], ["normgrad"])
    torch.testing.assert_close(got["normgrad", "conv2"], want["normgrad", "conv2"], rtol=0, atol=0, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# §2.2 Half precision: finite maps wherever the plain gradient is finite


def half_and_reference(x: torch.Tensor, dtype: torch.dtype) -> tuple[dict, dict]:
    """Every built-in method in ``dtype``, and in float64 with the same (rounded) weights and images."""
    out = []
    for m, xx in ((make().to(dtype), x.to(dtype)), (make().to(dtype).double(), x.to(dtype).double())):
        maps = dict(revisal.saliency(m, xx, 1, LAYERS, EVERYWHERE))
        maps.update(revisal.saliency(m, xx, 1, CONVS, ["normgrad_conv"]))
        out.append(maps)
    return out[0], out[1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_maps_are_finite_and_accurate(images, dtype):
    """Finite wherever the plain gradient is (before: excitation backprop 60-90% NaN in float16), and
    within a few roundings of the dtype per layer of the float64 maps (relative to the map's scale)."""
    maps, reference = half_and_reference(images, dtype)
    for (method, layer), m in maps.items():
        assert torch.isfinite(m)[torch.isfinite(maps["gradient", layer])].all(), (method, layer)
        want = reference[method, layer]
        tolerance = 16 * torch.finfo(dtype).eps * float(want.abs().max())
        torch.testing.assert_close(m.double(), want, rtol=0, atol=tolerance, msg=f"{method} at {layer!r}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_resnet_maps_are_finite(dtype):
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval().to(dtype)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(dtype)
    layers = ["", "conv1", "layer1", "layer2.0.conv1", "layer4"]
    maps = revisal.saliency(model, x, 3, layers, EVERYWHERE)
    for (method, layer), m in maps.items():
        assert torch.isfinite(m)[torch.isfinite(maps["gradient", layer])].all(), (method, layer)


# ---------------------------------------------------------------------------------------------
# §2.3 Non-finite maps are an error naming the method, the layer and the share of bad values


class _NaNAtCorner(torch.autograd.Function):
    """Identity whose backward puts NaN at the top-left location of every channel."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        g[..., 0, 0] = float("nan")
        return g


class NaNGradient(Net):
    def stem(self, x):
        return _NaNAtCorner.apply(super().stem(x))


@pytest.mark.parametrize("method", list(revisal.METHODS))
def test_non_finite_maps_raise(images, method):
    with pytest.raises(revisal.NonFiniteMapError, match=rf"'{method}'.*'conv1'.*\d%") as info:
        revisal.saliency(make(NaNGradient), images, 1, ["conv1"], [method])
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ValueError)


def test_non_finite_share_is_reported(images):
    """NaN at one of the 8×8 locations: 1/64 of the gradient map."""
    with pytest.raises(revisal.NonFiniteMapError, match=r"'gradient' at layer 'conv1'.* 1\.6% "):
        revisal.saliency(make(NaNGradient), images, 1, ["conv1"], ["gradient"])


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_huge_meta_step_raises(images, batching):
    with pytest.raises(revisal.NonFiniteMapError, match=r"'normgrad' at layer 'conv2'.*%.*lr"):
        revisal.saliency(make(), images, 1, ["conv2"], ["normgrad"], meta=revisal.MetaStep(1e20, batching=batching))


# ---------------------------------------------------------------------------------------------
# §2.4 The model comes back exactly as it went in, whatever its forward does to itself


def _write_parameter(module):
    with torch.no_grad():
        module.conv1.bias.add_(1)


ACTIONS = {
    "rebinds a buffer": lambda m: setattr(m, "count", m.count + 1),
    "writes a buffer in place": lambda m: m.count.add_(1),
    "adds a buffer": lambda m: m.register_buffer("extra", torch.ones(1)),
    "deletes a buffer": lambda m: delattr(m, "count") if "count" in m._buffers else None,
    "replaces a parameter": lambda m: setattr(m.conv1, "bias", nn.Parameter(m.conv1.bias.detach() + 1)),
    "writes a parameter in place": _write_parameter,
    "rebinds a parameter's data": lambda m: setattr(m.conv1.bias, "data", m.conv1.bias.data + 1),
    "unfreezes a parameter": lambda m: m.fc.weight.requires_grad_(True),
    "sets a .grad": lambda m: setattr(m.fc.weight, "grad", torch.ones_like(m.fc.weight)),
    "replaces a submodule": lambda m: setattr(m, "spare", nn.Linear(2, 2)),
    "adds a submodule": lambda m: m.add_module("new", nn.Linear(1, 1)),
    "rebinds a plain tensor": lambda m: setattr(m, "cache", m.cache + 1),
    "writes a plain tensor in place": lambda m: m.cache.add_(1),
    "adds an attribute": lambda m: setattr(m, "note", "seen"),
    "counts its calls": lambda m: setattr(m, "calls", m.calls + 1),
    "appends to a list": lambda m: m.log.append(1),
    "switches to training mode": lambda m: m.train(),
    "switches a submodule to training mode": lambda m: m.bn.train(),
    "registers a hook": lambda m: m.conv2.register_forward_hook(lambda *args: None),
    "parametrizes a weight": lambda m: torch.nn.utils.parametrize.register_parametrization(m.spare_conv, "weight",
                                                                                          nn.Identity()),
}


class Hostile(Net):
    def __init__(self, action=None, fails: bool = False):
        super().__init__()
        self.register_buffer("count", torch.zeros(()))
        self.cache = torch.zeros(2)
        self.calls = 0
        self.log: list = []
        self.spare = nn.Identity()
        self.spare_conv = nn.Conv2d(1, 1, 1)
        self.action, self.fails = action, fails

    def forward(self, x):
        x = self.stem(x)
        self.action(self)
        if self.fails:
            raise RuntimeError("boom mid-forward")
        return self.fc(self.avg(F.relu(self.conv3(self.pool(self.body(x))))).flatten(1))


def _describe(value):
    if isinstance(value, torch.Tensor):
        grad = value.grad if value.is_leaf else None
        return ("tensor", id(value), value.detach().clone(), value.requires_grad,
                None if grad is None else (id(grad), grad.clone()))
    if isinstance(value, dict):
        return ("dict", {k: _describe(v) for k, v in value.items()})
    if isinstance(value, (list, tuple, set)):
        return (type(value).__name__, [_describe(v) for v in value])
    return ("object", id(value))


def snapshot(model: nn.Module) -> dict:
    """Every attribute of every module (parameters, buffers, submodules, hooks, flags, plain
    attributes), with tensors by identity and value."""
    return {name: (id(type(m)), {k: _describe(v) for k, v in vars(m).items()}) for name, m in model.named_modules()}


def assert_same(a, b, where="model"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("batching", BATCHINGS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_model_state_restored(images, action, batching, fails):
    model = make(Hostile, action=ACTIONS[action], fails=fails)
    before = snapshot(model)
    try:
        revisal.saliency(model, images, 1, ["conv2"], RULE_METHODS, meta=meta_step(batching))
    except RuntimeError:
        # a forward that mutates the model may be impossible to vmap; the state must still come back
        if not fails and batching != "vmap":
            raise
    else:
        assert not fails
    assert_same(before, snapshot(model))


def test_other_public_functions_restore_rebound_buffers(images):
    model = make(Hostile, action=ACTIONS["rebinds a buffer"])
    before = snapshot(model)
    importlib.import_module("revisal.activations").layer_activations(model, images, ["conv1", "conv2"])
    revisal.metrics.class_sensitivity(model, images, ["conv2"], ["normgrad"])
    assert_same(before, snapshot(model))


# ---------------------------------------------------------------------------------------------
# §3.5 Images whose dtype or device differ from the model's


def count_forwards(model: nn.Module) -> list:
    calls: list = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


@pytest.mark.parametrize("model_dtype, image_dtype", [(torch.float32, torch.float64), (torch.float64, torch.float32),
                                                      (torch.float16, torch.float32), (torch.float32, torch.bfloat16)])
def test_images_dtype_must_match_the_model(images, model_dtype, image_dtype):
    model = make().to(model_dtype)
    calls = count_forwards(model)
    with pytest.raises(TypeError, match=rf"images: dtype {image_dtype}.*{model_dtype}.*images\.to\({model_dtype}\)"):
        revisal.saliency(model, images.to(image_dtype), 1, ["conv2"], ["normgrad"])
    assert not calls  # refused before any compute


def test_images_dtype_may_differ_under_autocast(images):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps = revisal.saliency(make(), images.to(torch.bfloat16), 1, ["conv2"], ["normgrad"])
    assert torch.isfinite(maps["normgrad", "conv2"]).all()


def test_images_on_another_device(images):
    calls = count_forwards(model := make())
    with pytest.raises(ValueError, match=r"images: .*meta"):
        revisal.saliency(model, images.to("meta"), 1, ["conv2"], ["normgrad"])
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"images: on cuda:0 but the model is on cpu.*images\.to"):
            revisal.saliency(model, images.cuda(), 1, ["conv2"], ["normgrad"])
    assert not calls


def test_model_on_the_meta_device(images):
    with pytest.raises(ValueError, match=r"model: .*meta device"):
        revisal.saliency(make().to("meta"), images, 1, ["conv2"], ["normgrad"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_model_without_parameters_accepts_any_dtype(images, dtype):
    model = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())  # logits = channel means
    maps = revisal.saliency(model, images.to(dtype), 1, ["", "0"], ["gradient"])
    assert maps["gradient", ""].dtype == torch.promote_types(dtype, torch.float32)


# ---------------------------------------------------------------------------------------------
# §3.6 Targets: class names via model.classes; out-of-range and non-integer ids are refused


class Named(Net):
    classes = ("cat", "dog", "tiger cat", "car")


def test_target_by_class_name(images):
    model = make(Named)
    want = revisal.saliency(model, images, [2, 1, 3], ["conv2"], ["normgrad"])
    for target in (["tiger cat", "dog", "car"], ("tiger cat", 1, "car"), np.array(["tiger cat", "dog", "car"])):
        assert_same_maps(revisal.saliency(model, images, target, ["conv2"], ["normgrad"]), want)
    one = revisal.saliency(model, images, "tiger cat", ["conv2"], ["normgrad"])
    assert_same_maps(one, revisal.saliency(model, images, 2, ["conv2"], ["normgrad"]))
    with pytest.raises(ValueError, match=r"target: no class 'tigre cat' in model\.classes; did you mean \['tiger cat'"):
        revisal.saliency(model, images, "tigre cat", ["conv2"], ["normgrad"])
    with pytest.raises(TypeError, match=r"target: class name 'cat' needs model\.classes"):
        revisal.saliency(make(), images, "cat", ["conv2"], ["normgrad"])


def test_target_by_class_name_on_a_zoo_model():
    from revisal.models import zoo

    mini = zoo.LOADERS["mini_vgg"]()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    want = revisal.saliency(mini.model, x, 3, [mini.layers[-1]], ["normgrad"])
    assert_same_maps(revisal.saliency(mini.model, x, mini.classes[3], [mini.layers[-1]], ["normgrad"]), want)


BAD_TARGETS = [
    ("2**63", 2**63, ValueError),
    ("2**64", 2**64, ValueError),
    ("-2**63-1", -(2**63) - 1, ValueError),
    ("numpy uint64 max", np.uint64(2**64 - 1), ValueError),
    ("numpy negative", np.int64(-3), ValueError),
    ("huge in a list", [2**70, 1, 0], ValueError),
    ("uint64 array", np.array([2**63, 1, 0], dtype=np.uint64), ValueError),
    ("float tensor", torch.tensor([1.5, 2.0, 0.0]), TypeError),
    ("integral float tensor", torch.tensor([1.0, 2.0, 0.0]), TypeError),
    ("float array", np.array([1.0, 2.0, 0.0]), TypeError),
    ("float in a list", [1.0, 2, 0], TypeError),
    ("bool in a list", [True, 1, 0], TypeError),
    ("float", 1.0, TypeError),
    ("None in a list", [None, 1, 0], TypeError),
    ("bytes", b"cat", TypeError),
]


@pytest.mark.parametrize("case", BAD_TARGETS, ids=[c[0] for c in BAD_TARGETS])
def test_bad_targets_raise_clear_errors(images, case):
    _, target, error = case
    model = make(Named)
    calls = count_forwards(model)
    with pytest.raises(error, match="target"):
        revisal.saliency(model, images, target, ["conv2"], ["normgrad"])
    assert not calls


@pytest.mark.parametrize("target", [np.int64(2), np.uint8(2), torch.tensor(2), torch.tensor([2, 2, 2], dtype=torch.int16),
                                    np.array([2, 2, 2], dtype=np.uint32)], ids=repr)
def test_integer_targets_of_any_integer_type(images, target):
    want = revisal.saliency(make(), images, 2, ["conv2"], ["normgrad"])
    assert_same_maps(revisal.saliency(make(), images, target, ["conv2"], ["normgrad"]), want)


# ---------------------------------------------------------------------------------------------
# §3.7 layers and methods: any iterable of str


ITERABLES = {
    "list": list,
    "tuple": tuple,
    "generator": lambda items: (i for i in items),
    "iterator": iter,
    "dict keys": lambda items: dict.fromkeys(items).keys(),
    "numpy array": np.array,
}


@pytest.mark.parametrize("kind", list(ITERABLES))
def test_layers_and_methods_accept_any_iterable(images, kind):
    model = make()
    want = revisal.saliency(model, images, 1, ["conv1", "conv2"], ["normgrad", "gradient"])
    wrap = ITERABLES[kind]
    got = revisal.saliency(model, images, 1, wrap(["conv1", "conv2"]), wrap(["normgrad", "gradient"]))
    assert got.layers == want.layers and got.methods == want.methods
    assert all(type(name) is str for name in got.layers + got.methods)
    assert_same_maps(got, want)
    assert_same_maps(revisal.saliency(model, images, 1, np.str_("conv2"), "normgrad"),
                     revisal.saliency(model, images, 1, "conv2", "normgrad"))


@pytest.mark.parametrize("argument, value", [
    ("layers", [b"conv1"]), ("layers", ["conv1", None]), ("layers", 5), ("layers", np.array([1, 2])),
    ("layers", (i for i in [1])), ("methods", [1]), ("methods", 5), ("methods", (i for i in ["normgrad", 3])),
])
def test_non_str_names_are_refused(images, argument, value):
    kwargs = dict(layers=["conv2"], methods=["normgrad"])
    kwargs[argument] = value
    with pytest.raises(TypeError, match=argument):
        revisal.saliency(make(), images, 1, **kwargs)


# ---------------------------------------------------------------------------------------------
# §3.8 MetaStep takes any real number


@pytest.mark.parametrize("lr", [np.float32(1e-3), np.float64(1e-3), np.int64(0), torch.tensor(1e-3),
                                fractions.Fraction(1, 1000), decimal.Decimal("0.001"), 1e-3, 0], ids=repr)
def test_meta_step_accepts_any_real_number(lr):
    step = revisal.MetaStep(lr)
    assert type(step.lr) is float and step.lr == float(lr)


@pytest.mark.parametrize("lr", [True, np.bool_(True), float("nan"), float("inf"), -1e-3, np.float32("nan"), "1e-3",
                                torch.tensor([1e-3, 1e-3]), 1j, None], ids=repr)
def test_meta_step_refuses_non_numbers(lr):
    with pytest.raises((TypeError, ValueError), match="lr"):
        revisal.MetaStep(lr)


@pytest.mark.parametrize("batch_size", [np.int64(2), np.int32(2), np.uint8(2)], ids=repr)
def test_batch_size_of_any_integer_type(images, batch_size):
    want = revisal.saliency(make(), images, 1, ["conv2"], ["normgrad"], batch_size=2)
    assert_same_maps(revisal.saliency(make(), images, 1, ["conv2"], ["normgrad"], batch_size=batch_size), want)


def test_meta_step_with_numpy_lr_gives_the_same_maps(images):
    got = revisal.saliency(make(), images, 1, ["conv2"], ["normgrad"], meta=revisal.MetaStep(np.float32(1e-2)))
    want = revisal.saliency(make(), images, 1, ["conv2"], ["normgrad"], meta=revisal.MetaStep(float(np.float32(1e-2))))
    assert_same_maps(got, want)


# ---------------------------------------------------------------------------------------------
# §3.9 Images made under inference mode work with meta, also inside inference mode


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_inference_mode_images_with_meta(images, batching):
    model, meta = make(), revisal.MetaStep(1e-2, batching=batching)
    want = revisal.saliency(model, images, 1, LAYERS, RULE_METHODS, meta=meta)
    with torch.inference_mode():
        frozen = images.clone()
    assert_same_maps(revisal.saliency(model, frozen, 1, LAYERS, RULE_METHODS, meta=meta), want)
    with torch.inference_mode():
        inside = revisal.saliency(model, frozen, 1, LAYERS, RULE_METHODS, meta=meta)
    assert_same_maps(inside, want)


# ---------------------------------------------------------------------------------------------
# §3.10 vmap meta validates exactly like the loop


class WithSpare(Net):
    """``spare`` never runs; ``aux`` runs but the output does not depend on it."""

    def __init__(self):
        super().__init__()
        self.spare = nn.Conv2d(6, 6, 1)
        self.aux = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        self.aux(x)
        return super().forward(x)


def _resnet18():
    import torchvision
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=5).eval()


VALIDATION = [
    ("module never runs", lambda: make(WithSpare), dict(layers=["spare"])),
    ("objective does not depend on the layer", lambda: make(WithSpare), dict(layers=["aux"])),
    ("not a feature map", lambda: make(WithSpare), dict(layers=["fc"])),
    ("shared module", _resnet18, dict(layers=["layer1.0.relu"])),
    ("class id out of range", lambda: make(WithSpare), dict(target=7)),
    ("callable target of the wrong shape", lambda: make(WithSpare), dict(target=lambda out: out)),
]


@pytest.mark.parametrize("case", VALIDATION, ids=[c[0] for c in VALIDATION])
def test_vmap_validates_like_the_loop(case):
    _, build, override = case
    model = build()
    kwargs = dict(images=torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)), target=1,
                  layers=["conv2"], methods=["normgrad"])
    kwargs.update(override)
    messages = {}
    for batching in ("loop", "vmap"):
        with pytest.raises(ValueError) as info:
            revisal.saliency(model, meta=revisal.MetaStep(1e-2, batching=batching), **kwargs)
        messages[batching] = str(info.value)
    assert messages["vmap"] == messages["loop"]


# ---------------------------------------------------------------------------------------------
# §3.11 A conv called with keyword arguments (conv(input=x))


class KeywordCall(Net):
    def stem(self, x):
        return F.relu(self.bn(self.conv1(input=x)))

    def body(self, x):
        return F.relu(self.conv2(input=x) + x)


@pytest.mark.parametrize("batching", BATCHINGS)
def test_conv_called_with_keywords(images, batching):
    methods = ["normgrad_conv", "normgrad", "excitation_backprop"]
    got = revisal.saliency(make(KeywordCall), images, 1, ["conv1", "conv2"], methods, meta=meta_step(batching))
    want = revisal.saliency(make(Net), images, 1, ["conv1", "conv2"], methods, meta=meta_step(batching))
    assert_same_maps(got, want)


# ---------------------------------------------------------------------------------------------
# §3.12 Layers inside torch.utils.checkpoint blocks


class Checkpointed(Net):
    def __init__(self, reentrant: bool = False):
        super().__init__()
        self.reentrant = reentrant

    def forward(self, x):
        x = checkpoint(self.stem, x, use_reentrant=self.reentrant)
        x = checkpoint(self.body, x, use_reentrant=self.reentrant)
        x = F.relu(self.conv3(self.pool(x)))
        return self.fc(self.avg(x).flatten(1))


NON_INVASIVE = [m for m in EVERYWHERE if m not in INVASIVE]


@pytest.mark.parametrize("batching", [None, "loop"])
def test_checkpointed_layers_give_the_plain_maps(images, batching):
    """Non-reentrant checkpointing re-runs the blocks in the backward; the maps do not change."""
    for layers, methods in ((LAYERS, NON_INVASIVE), (CONVS, ["normgrad_conv"])):
        got = revisal.saliency(make(Checkpointed), images, 1, layers, methods, meta=meta_step(batching))
        want = revisal.saliency(make(Net), images, 1, layers, methods, meta=meta_step(batching))
        assert_same_maps(got, want)


@pytest.mark.parametrize("layers", [["", "conv3"], ["conv2"], ["conv3"]])
@pytest.mark.parametrize("method", INVASIVE)
def test_checkpoint_with_invasive_rules(images, method, layers):
    """The modified backward rules cannot reach the forward that checkpointing re-runs in the backward:
    such a call is refused, naming the checkpointing; a backward that re-runs nothing (e.g. one that
    stops above the checkpointed blocks) gives the plain maps."""
    want = revisal.saliency(make(Net), images, 1, layers, [method])
    try:
        got = revisal.saliency(make(Checkpointed), images, 1, layers, [method])
    except ValueError as error:
        assert re.search(rf"'{method}'.*cannot run through torch.utils.checkpoint: module '\w+' is recomputed",
                         str(error))
        assert layers != ["conv3"]
    else:
        assert_same_maps(got, want)


def test_reentrant_checkpoint_names_the_checkpointing(images):
    with pytest.raises(ValueError, match=r"layers: module 'conv2' runs with gradients disabled.*use_reentrant=True"):
        revisal.saliency(make(Checkpointed, reentrant=True), images, 1, ["conv2"], ["normgrad"])


def test_vmap_meta_on_a_checkpointed_model_names_the_checkpointing(images):
    with pytest.raises(ValueError, match=r"meta: .*checkpoint.*batching='loop'"):
        revisal.saliency(make(Checkpointed), images, 1, ["conv3"], ["normgrad"], meta=revisal.MetaStep(batching="vmap"))


# ---------------------------------------------------------------------------------------------
# Errors come before any compute


EARLY = {
    "unknown layer": dict(layers=["nope"]), "layer not str": dict(layers=[3]), "unknown method": dict(methods=["nope"]),
    "class name without classes": dict(target="cat"), "target 2**63": dict(target=2**63),
    "target length": dict(target=[0, 1]), "batch_size": dict(batch_size=0),
    "float64 images": dict(images=torch.zeros(3, 3, 8, 8, dtype=torch.float64)),
    "unknown contrast layer": dict(contrast_layer="nope"), "meta not a MetaStep": dict(meta=1e-3),
}


@pytest.mark.parametrize("override", list(EARLY.values()), ids=list(EARLY))
def test_bad_arguments_fail_before_any_forward(images, override):
    model = make()
    calls = count_forwards(model)
    kwargs = dict(images=images, target=1, layers=["conv2"], methods=["normgrad"])
    kwargs.update(override)
    with pytest.raises((TypeError, ValueError)):
        revisal.saliency(model, **kwargs)
    assert not calls


def test_class_sensitivity_takes_generators(images):
    """Its arguments are checked before the logits pass, and a generator is not consumed twice."""
    got = revisal.metrics.class_sensitivity(make(), images, (l for l in ["conv2"]), (m for m in ["normgrad"]))
    want = revisal.metrics.class_sensitivity(make(), images, ["conv2"], ["normgrad"])
    torch.testing.assert_close(got["normgrad", "conv2"], want["normgrad", "conv2"], rtol=0, atol=0, equal_nan=True)
