"""Files on disk: atomic writes leave nothing half-written, paths resolve to the repository root,
digests are sha256 of exactly what they claim to cover and stay what earlier caches recorded."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from reproduction import storage
from reproduction.render import SceneSpec
from reproduction.testbed import cache_key
from revisal import files


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    files.atomic_write(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        files.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_save_npz_round_trips_and_leaves_no_temporary(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(["x", "yz"])}
    storage.save_npz(tmp_path / "p.npz", arrays)
    with np.load(tmp_path / "p.npz") as z:
        assert sorted(z.files) == ["a", "b"]
        np.testing.assert_array_equal(z["a"], arrays["a"])
        np.testing.assert_array_equal(z["b"], arrays["b"])
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_project_path_finds_repo_root(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    deep = tmp_path / "build" / "smoke"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert storage.project_path("figures") == tmp_path / "figures"
    assert storage.project_path("/abs/x") == type(tmp_path)("/abs/x")


def test_digest_file_reads_every_block(tmp_path):
    data = np.random.default_rng(0).bytes((5 << 20) // 2)  # 2.5 MiB: three 1 MiB blocks
    (tmp_path / "f").write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert files.digest_file(tmp_path / "f") == files.digest_bytes(data) == want
    (tmp_path / "g").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the last byte of the last block
    assert files.digest_file(tmp_path / "g") != want


def test_digest_json_ignores_key_order_only():
    a = storage.digest_json({"kind": "pointing", "spec": {"layers": ["a", "b"], "size": 64}})
    assert a == storage.digest_json({"spec": {"size": 64, "layers": ["a", "b"]}, "kind": "pointing"})
    assert a != storage.digest_json({"kind": "pointing", "spec": {"layers": ["b", "a"], "size": 64}})
    assert storage.digest_json({"a": 1}) == hashlib.sha256(b'{"a": 1}').hexdigest()


def test_digest_arrays_covers_names_dtypes_shapes_values_and_context():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    base = storage.digest_arrays({"x": x, "y": np.ones(2)})
    assert base == storage.digest_arrays({"y": np.ones(2), "x": x})  # mapping order is irrelevant
    different = [
        {"x": x, "z": np.ones(2)},                           # a name
        {"x": x.astype(np.float32).view(np.int32), "y": np.ones(2)},  # values (same dtype and shape)
        {"x": x.view(np.float32), "y": np.ones(2)},          # dtype (same bytes)
        {"x": x.reshape(3, 2), "y": np.ones(2)},             # shape (same bytes)
    ]
    assert len({base, *(storage.digest_arrays(d) for d in different)}) == 5
    assert storage.digest_arrays({"x": x, "y": np.ones(2)}, "run/0") != base
    assert storage.digest_arrays({"x": x.T}) == storage.digest_arrays({"x": np.ascontiguousarray(x.T)})


def test_digest_arrays_takes_tensors_by_value():
    t = torch.arange(6.0).reshape(2, 3).requires_grad_()
    assert storage.digest_arrays({"w": t}) == storage.digest_arrays({"w": t.detach().numpy()})
    model = torch.nn.Linear(3, 2)
    state = model.state_dict()
    assert storage.digest_arrays(state) == storage.digest_arrays({k: v.numpy() for k, v in state.items()})


def test_digests_match_what_earlier_caches_recorded():
    """Result-cache parts and testbed file names written before the digests moved here stay valid:
    the values below were computed by the code before the move (experiments/cache.py's ``digest``,
    data/testbed.py's ``cache_key``)."""
    arrays = {"b": np.array([1, 2], dtype=np.int64), "a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert storage.digest_arrays(arrays, "pointing/abc/3") == (
        "367d7a587024237ecd59f5fe99a7277e676b9b46fc0df2e608644574a44726ee")
    assert cache_key("test", 8, SceneSpec(size=64), 0) == "8e5c857efca2558f"


def test_jsonable_gives_plain_json_types():
    got = files.jsonable({1: (np.float32(0.5), torch.tensor(3)), "p": storage.project_path("/x"), "n": None})
    assert got == {"1": [0.5, 3], "p": "/x", "n": None}
