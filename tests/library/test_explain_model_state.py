"""``revisal.explain.explain`` explains a model in eval mode and hands it back exactly as found.

A model in training mode would otherwise update its BatchNorm running statistics in the forward that
ranks the classes, and rank them with batch statistics and dropout: its explained classes would not
be its eval-mode top-1.
"""

from __future__ import annotations

import copy

import pytest
import torch
from explain_fixtures import photos, tiny

from revisal.data.transforms import IMAGENET_NORMALIZE
from revisal.explain import explain, read_image
from revisal.models.zoo import ZooModel


def _snapshot(model: torch.nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
            "training": {name: m.training for name, m in model.named_modules()},
            "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
            "grads": {name: p.grad for name, p in model.named_parameters()}}


def _assert_same(model: torch.nn.Module, before: dict) -> None:
    after = _snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key  # bit-identical, BatchNorm statistics included
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(g is None for g in after["grads"].values())


@pytest.mark.parametrize("meta_lr, batch_size", [(None, 1), (0.05, 3)], ids=["plain", "meta"])
def test_training_mode_model_is_explained_in_eval_mode_and_restored(tmp_path, meta_lr, batch_size):
    """A model in training mode (one submodule left in eval, one parameter frozen): a warning, the
    classes and maps of its eval-mode copy, and afterwards (also between batches, while the
    iteration is suspended) the same parameters, buffers, flags and gradients as before."""
    paths = photos(tmp_path, 4, side=20)
    model = tiny().train()
    model[4].eval()
    model[3].bias.requires_grad_(False)
    reference = copy.deepcopy(model).eval()
    zoo = ZooModel(name="tiny", model=model, normalize=IMAGENET_NORMALIZE, classes=["a", "b", "c"],
                   layers=("0", "3"), input_size=16)
    eval_zoo = ZooModel(name="tiny", model=reference, normalize=IMAGENET_NORMALIZE, classes=["a", "b", "c"],
                        layers=("0", "3"), input_size=16)
    before = _snapshot(model)
    kwargs = dict(methods=["gradient", "normgrad"], batch_size=batch_size, meta_lr=meta_lr, progress=False)
    with pytest.warns(UserWarning, match="model: .* training mode .* explained in eval mode"):
        results = explain(zoo, paths, **kwargs)
    first = next(results)
    _assert_same(model, before)  # restored between batches
    results = [first, *results]
    _assert_same(model, before)
    with torch.no_grad():
        logits = reference(IMAGENET_NORMALIZE(torch.stack([read_image(p, 16) for p in paths])))
    assert [r.target for r in results] == logits.argmax(-1).tolist()
    assert [[c for c, _, _ in r.top5] for r in results] == logits.topk(3, -1).indices.tolist()
    expected = list(explain(eval_zoo, paths, **kwargs))
    for got, want in zip(results, expected):
        assert (got.maps == want.maps).all()


def test_model_is_restored_when_explaining_fails(tmp_path):
    """A forward that fails in the middle of a run leaves the model as found."""
    paths = photos(tmp_path, 2, side=20)
    model = tiny().train()
    calls = []

    def fail_on_third(module, args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    handle = model[3].register_forward_pre_hook(fail_on_third)
    before = _snapshot(model)
    zoo = ZooModel(name="tiny", model=model, normalize=IMAGENET_NORMALIZE, classes=["a", "b", "c"],
                   layers=("0",), input_size=16)
    with pytest.warns(UserWarning, match="training mode"):
        results = explain(zoo, paths, methods=["gradient"], batch_size=1, progress=False)
    with pytest.raises(RuntimeError, match="boom"):
        list(results)
    handle.remove()
    _assert_same(model, before)
