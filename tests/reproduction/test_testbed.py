"""The synthetic testbed: seeded, exact masks, the VOC "difficult" rule, captions, verified caches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reproduction import render, testbed


@pytest.fixture(scope="module")
def scenes():
    return testbed.load_split("val", n=300, cache_dir=None, progress=False, workers=1)


def test_scenes_are_pure_functions_of_seed_split_index(scenes):
    again = testbed.load_split("val", n=300, cache_dir=None, progress=False, workers=2)
    for name in testbed.ARRAYS:
        assert np.array_equal(scenes.arrays[name], again.arrays[name])
    other_split = testbed.load_split("test", n=20, cache_dir=None, progress=False, workers=1)
    assert not np.array_equal(other_split.arrays["images"], scenes.arrays["images"][:20])
    single = render.render(np.random.default_rng([0, testbed.SPLITS["val"], 17]), render.SceneSpec(64))
    assert np.array_equal(single.image, scenes.image(17))


def test_shapes_and_ranges(scenes):
    a = scenes.arrays
    assert a["images"].shape == (300, 64, 64, 3) and a["images"].dtype == np.uint8
    counts = (a["classes"] >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= render.MAX_OBJECTS
    assert set(np.unique(a["classes"][a["classes"] >= 0])) == set(range(len(render.CLASSES)))
    pixels, labels = scenes[0]
    assert pixels.shape == (3, 64, 64) and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
    assert labels.shape == (12,) and set(labels.tolist()) <= {0.0, 1.0}


def test_masks_boxes_and_labels_are_exact(scenes):
    a = scenes.arrays
    for i in range(len(scenes)):
        inst = a["instances"][i]
        present = scenes.class_ids(i)
        assert present == sorted(np.nonzero(scenes.labels[i].numpy())[0].tolist())
        for j, c in enumerate(a["classes"][i]):
            if c < 0:
                assert not (inst == j + 1).any()
                continue
            yy, xx = np.nonzero(inst == j + 1)
            assert yy.size == a["areas"][i][j] > 0
            assert tuple(a["boxes"][i][j]) == (xx.min(), yy.min(), xx.max(), yy.max())
        for c in present:
            slots = [j + 1 for j, k in enumerate(a["classes"][i]) if k == c]
            assert np.array_equal(scenes.class_mask(i, c), np.isin(inst, slots))


def test_occluded_objects_keep_half_their_area(scenes):
    a = scenes.arrays
    real = a["classes"] >= 0
    assert np.all(a["areas"][real] >= 0.5 * a["drawn"][real])
    assert np.any(a["areas"][real] < a["drawn"][real])  # occlusion does happen
    assert np.all(a["drawn"][~real] == 0)


def test_difficult_rule(scenes):
    seen = {True: 0, False: 0}
    for i in range(len(scenes)):
        present = scenes.class_ids(i)
        for c in present:
            area = scenes.class_mask(i, c).mean()
            want = area < 0.25 and len(present) > 1
            assert scenes.difficult(i, c) == want
            seen[want] += 1
    assert seen[True] and seen[False]  # both kinds occur


def test_captions_name_the_two_largest_objects(scenes):
    unnamed = 0
    for i in range(50):
        text = scenes.caption(i)
        objs = sorted(scenes.objects(i), key=lambda o: -o["area"])
        assert text.startswith(("a ", "an "))
        assert text.startswith(f"a{'n' if objs[0]['colour'][0] in 'aeiou' else ''} {objs[0]['colour']} {objs[0]['class']}")
        if len(objs) > 1:
            assert text.endswith(f"{objs[1]['colour']} {objs[1]['class']}")
            assert any(f" {r} a" in text for r in ("left of", "right of", "above", "below"))
        assert len(text.split()) == (3 if len(objs) == 1 else (7 if " of " not in text else 8))
        unnamed += max(0, len(objs) - 2)
    assert unnamed > 0  # some scenes have objects the caption leaves out
    assert render.caption(np.array([3, -1, -1, -1]), np.array([1, -1, -1, -1]), np.zeros((4, 4)), np.array([5, 0, 0, 0])) \
        == "an orange frame"


def test_largest_classes_are_each_scenes_largest_object(scenes):
    want = [max(scenes.objects(i), key=lambda o: o["area"])["class_id"] for i in range(len(scenes))]
    got = scenes.largest_classes()
    assert got.dtype == torch.int64 and got.tolist() == want


def test_tolerance_scales_with_size(scenes):
    assert scenes.tolerance == pytest.approx(15 / 500 * 64)


def _oracle_accuracy(scenes, side: int) -> float:
    """Pointing accuracy (% of pairs) of the best map a ``side × side`` grid can hold: the class mask
    area-pooled to the grid, then resized (bilinear) to the image as every saliency map is."""
    import torch
    import torch.nn.functional as F

    from revisal.metrics.pointing import is_hit

    hits = []
    for i in range(len(scenes)):
        for c in scenes.class_ids(i):
            mask = scenes.class_mask(i, c)
            low = F.adaptive_avg_pool2d(torch.from_numpy(mask).float()[None, None], side)
            up = F.interpolate(low, size=mask.shape, mode="bilinear", align_corners=False)[0, 0]
            y, x = divmod(int(up.argmax()), mask.shape[1])
            hits.append(is_hit(mask, (x, y), scenes.tolerance))
    return 100 * float(np.mean(hits))


def test_the_mini_models_last_stage_can_point():
    """The last preset layer of both mini models is 8×8 at 64² (one cell 1/8 of the side, ResNet-50's
    layer4 on 224² VOC07: 1/7), and at that resolution a map that marks the object's cells can land
    within the pointing game's tolerance on nearly every pair; at 4×4 (one more downsampling) even
    such an oracle map misses a quarter of them, which is why the mini models keep their last stage at 8×8."""
    import torch

    from reproduction.mini_models import build
    from reproduction.zoo import PRESETS

    sides = set()
    for name in ("mini_vgg", "mini_resnet"):
        model, out = build(name, 12).eval(), {}
        handle = dict(model.named_modules())[PRESETS[name].layers[-1]].register_forward_hook(
            lambda m, a, o: out.__setitem__("side", o.shape[-1]))
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
        handle.remove()
        sides.add(out["side"])
    assert sides == {8}
    scenes = testbed.load_split("test", n=300, cache_dir=None, progress=False, workers=1)
    assert _oracle_accuracy(scenes, 8) >= 97
    assert _oracle_accuracy(scenes, 4) <= 85


def test_cache_is_reused_and_corruption_detected(tmp_path, monkeypatch):
    first = testbed.load_split("test", n=30, cache_dir=tmp_path, progress=False, workers=1)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")

    def no_generation(*args, **kwargs):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(testbed, "generate", no_generation)
    cached = testbed.load_split("test", n=30, cache_dir=tmp_path, progress=False)
    assert np.array_equal(cached.arrays["images"], first.arrays["images"])

    monkeypatch.undo()
    meta = next(tmp_path.glob("*.json"))
    record = json.loads(meta.read_text())
    record["sha256"] = "0" * 64  # the arrays no longer match their checksum
    meta.write_text(json.dumps(record))
    regenerated = testbed.load_split("test", n=30, cache_dir=tmp_path, progress=False, workers=1)
    assert np.array_equal(regenerated.arrays["images"], first.arrays["images"])
    assert json.loads(meta.read_text())["sha256"] != "0" * 64

    npz = next(tmp_path.glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])  # truncated file
    assert np.array_equal(testbed.load_split("test", n=30, cache_dir=tmp_path, progress=False, workers=1).arrays["images"],
                          first.arrays["images"])


def test_different_parameters_use_different_cache_entries():
    spec = render.SceneSpec(64)
    assert testbed.cache_key("test", 30, spec, 0) != testbed.cache_key("test", 30, spec, 1)
    assert testbed.cache_key("test", 30, spec, 0) != testbed.cache_key("test", 30, render.SceneSpec(64, noise=0.05), 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        testbed.load_split("training", n=2, cache_dir=None)
    with pytest.raises(ValueError, match="n:"):
        testbed.load_split("test", n=0, cache_dir=None)
    with pytest.raises(ValueError, match="size"):
        render.SceneSpec(8)
