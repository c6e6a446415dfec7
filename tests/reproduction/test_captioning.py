"""Captioning explanations: vocabulary, decoder consistency, caption saliency against the slow way,
the bring-your-own protocol on a torchvision ResNet-101, BLEU, mask mass, deterministic training.

Comparisons between two routes to the same numbers (greedy decoding vs teacher forcing, revisal vs
plain autograd, a caption vs the sum of its words) run in float64: their float32 rounding depends on
the CPU and the batch size, and an arg-max between near-tied words could flip with it. In float64
they agree to ~1e-15; the tolerances (1e-10) hold on any machine, and a wrong formula is off by O(1).
"""

from __future__ import annotations

import math

import pytest
import torch
from model_state import assert_same_state, snapshot
from torchvision.models import resnet101

from conftest import oracle
from reproduction import testbed
from reproduction.captioner import (
    TESTBED_VOCAB,
    Captioner,
    CaptionerConfig,
    TorchvisionCaptioner,
    caption_saliency,
    load_captioner,
    mask_mass,
    named_objects,
    train_captioner,
)
from reproduction.captioner.scores import caption_scores, corpus_bleu
from reproduction.captioner.train import caption_quality
from reproduction.testbed import TESTBED_NORMALIZE

CAPTIONS = ["a red star above a blue ring", "an orange frame", "a white heart left of a black plus"]


@pytest.fixture(scope="module")
def random_captioner():
    torch.manual_seed(0)
    captioner = Captioner(TESTBED_VOCAB).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in captioner.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    return captioner.double()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 64, 64, dtype=torch.float64, generator=g), TESTBED_VOCAB.encode(CAPTIONS)


def test_vocabulary_round_trip_and_errors():
    tokens = TESTBED_VOCAB.encode(CAPTIONS)
    assert tokens.shape == (3, 9) and TESTBED_VOCAB.decode(tokens) == CAPTIONS
    assert int(tokens[1, 3]) == TESTBED_VOCAB.eos and int(tokens[1, 4]) == TESTBED_VOCAB.pad
    assert TESTBED_VOCAB.mask(tokens).sum(1).tolist() == [8, 4, 9]
    with pytest.raises(ValueError, match="dragon"):
        TESTBED_VOCAB.encode(["a red dragon"])
    with pytest.raises(ValueError, match="length"):
        TESTBED_VOCAB.encode(CAPTIONS, length=4)
    with pytest.raises(TypeError, match="texts"):
        TESTBED_VOCAB.encode("a red star")


def test_greedy_decoding_agrees_with_teacher_forcing(random_captioner, batch):
    images, _ = batch
    generated = random_captioner.generate(images, max_len=6)
    with torch.no_grad():
        v = random_captioner.embed_images(images)
        logits = random_captioner.decoder.logits(v, generated)
        lp = random_captioner.log_probs(images, generated)
    mask = TESTBED_VOCAB.mask(generated)
    # every generated word is the teacher-forced arg-max, and its log-prob is the max log-softmax
    assert torch.equal(logits.argmax(2)[mask], generated[mask])
    assert lp.dtype == torch.float64
    torch.testing.assert_close(lp[mask], logits.log_softmax(2).amax(2)[mask], rtol=1e-10, atol=1e-10)
    assert bool((lp[~mask] == 0).all())


def _slow_selective_normgrad(captioner, images, tokens, layer, word=None):
    """‖(g ⊙ x)₊‖ over channels with g = ∂(Σ_t log p or one word's log p)/∂x, by plain autograd."""
    store = {}
    module = dict(captioner.named_modules())[layer]

    def keep(mod, inp, out):
        store["x"] = out

    handle = module.register_forward_hook(keep)
    try:
        lp = captioner.log_probs(images, tokens)
    finally:
        handle.remove()
    y = lp.sum(1) if word is None else lp[:, word]
    g, = torch.autograd.grad(y.sum(), store["x"])
    return (g * store["x"]).clamp_min(0).norm(dim=1, keepdim=True).detach()


@pytest.mark.parametrize("word", [None, 2])
def test_caption_saliency_equals_the_slow_way(random_captioner, batch, word):
    images, tokens = batch
    before = snapshot(random_captioner)
    layers = ["encoder.layer2", "encoder.layer3", "encoder.layer4"]
    maps = caption_saliency(random_captioner, images, tokens, layers, word=word, batch_size=2)
    assert maps.layers == layers
    assert_same_state(before, snapshot(random_captioner))
    for layer in layers:
        want = _slow_selective_normgrad(random_captioner, images, tokens, layer, word)
        assert maps["selective_normgrad", layer].dtype == torch.float64
        torch.testing.assert_close(maps["selective_normgrad", layer], want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))


def test_caption_map_is_the_sum_of_word_maps_for_linear_methods(random_captioner, batch):
    images, tokens = batch
    whole = caption_saliency(random_captioner, images, tokens, ["encoder.layer3"], ["linear_approx", "gradient_sum"])
    for method in ("linear_approx", "gradient_sum"):
        words = sum(caption_saliency(random_captioner, images, tokens, ["encoder.layer3"], [method], word=t)[method, "encoder.layer3"]
                    for t in range(tokens.shape[1]))
        got = whole[method, "encoder.layer3"]
        torch.testing.assert_close(got, words, rtol=1e-10, atol=1e-10 * float(got.abs().max()))


def test_caption_saliency_rejects_bad_input(random_captioner, batch):
    images, tokens = batch
    with pytest.raises(ValueError, match="images"):
        caption_saliency(random_captioner, images[:2], tokens, ["encoder.layer3"])
    with pytest.raises(TypeError, match="tokens"):
        caption_saliency(random_captioner, images, tokens.float(), ["encoder.layer3"])
    with pytest.raises(ValueError, match="word"):
        caption_saliency(random_captioner, images, tokens, ["encoder.layer3"], word=9)
    with pytest.raises(TypeError, match="captioner"):
        caption_saliency(torch.nn.Conv2d(3, 3, 1), images, tokens, [""])
    with pytest.raises(ValueError, match="layer"):
        caption_saliency(random_captioner, images, tokens, ["encoder.layer9"])


def test_bring_your_own_resnet101_captioner():
    torch.manual_seed(0)
    captioner = TorchvisionCaptioner(resnet101(weights=None), TESTBED_VOCAB, hidden=64, embed=32).eval().double()
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    tokens = captioner.generate(images, max_len=5)
    assert tokens.shape[0] == 2 and tokens.dtype == torch.long
    before = snapshot(captioner)
    maps = caption_saliency(captioner, images, tokens, ["encoder.layer3", "encoder.layer4"])
    assert maps["selective_normgrad", "encoder.layer3"].shape == (2, 1, 4, 4)
    assert maps["selective_normgrad", "encoder.layer4"].shape == (2, 1, 2, 2)
    want = _slow_selective_normgrad(captioner, images, tokens, "encoder.layer4")
    torch.testing.assert_close(maps["selective_normgrad", "encoder.layer4"], want, rtol=1e-10,
                               atol=1e-10 * float(want.abs().max()))
    assert_same_state(before, snapshot(captioner))
    with pytest.raises(TypeError, match="resnet"):
        TorchvisionCaptioner(torch.nn.Linear(2, 2), TESTBED_VOCAB)


def test_bleu_known_values():
    assert corpus_bleu(["a red star"], ["a red star"], 3) == 1.0
    # 4 candidate words, 3 unigram matches (clipped: "a" occurs once in the reference), bigrams 1/3
    p1, p2 = 3 / 4, 1 / 3
    assert corpus_bleu(["a a red ring"], ["a red star ring"], 2) == pytest.approx(math.sqrt(p1 * p2))
    # brevity penalty: candidate of 2 words against a reference of 4
    assert corpus_bleu(["red star"], ["a red star ring"], 1) == pytest.approx(math.exp(1 - 4 / 2))
    assert corpus_bleu(["blue ring"], ["a red star"], 1) == 0.0
    scores = caption_scores(["a red star above a blue ring", "an orange frame"], ["a red star below a blue ring", "an orange frame"])
    assert scores["exact"] == 0.5 and scores["word_accuracy"] == pytest.approx(9 / 10)


def test_bleu_matches_nltk():
    nltk_bleu = oracle("nltk.translate.bleu_score")
    # every candidate has ≥ 4 words: for shorter ones NLTK counts max(1, #n-grams) in the denominator,
    # one more n-gram than the candidate has (Papineni's definition, ours, counts the n-grams)
    cands = ["a red star above a blue ring", "an orange frame left of a red ring", "a green disk above a red star",
             "a black plus below a pink heart"]
    refs = ["a red star above a blue disk", "an orange frame right of a red ring", "a green disk", "a black plus below a white heart"]
    for n in (1, 2, 3, 4):
        want = nltk_bleu.corpus_bleu([[r.split()] for r in refs], [c.split() for c in cands], weights=[1 / n] * n)
        assert corpus_bleu(cands, refs, n) == pytest.approx(want, rel=1e-12)


def test_mask_mass_and_named_objects():
    heat = torch.zeros(1, 4, 4)
    heat[0, 0, 0], heat[0, 3, 3], heat[0, 1, 1] = 2.0, 1.0, 1.0
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, 0, 0] = True
    masks[0, 1, 3:, 3:] = True
    assert mask_mass(heat, masks).tolist() == [[0.5, 0.25]]
    with pytest.raises(ValueError, match="non-negative"):
        mask_mass(-heat - 1, masks)
    objects = [{"colour": "red", "class": "star"}, {"colour": "blue", "class": "ring"}, {"colour": "red", "class": "ring"}]
    assert named_objects("a red star above a blue ring", objects) == [True, True, False]


def test_training_is_deterministic_and_loads(tmp_path):
    cfg = dict(epochs=1, batch_size=16, train_size=48, val_size=16, test_size=16, threads=1)
    a = train_captioner(CaptionerConfig(out=str(tmp_path / "a"), **cfg), progress=False)
    b = train_captioner(CaptionerConfig(out=str(tmp_path / "b"), **cfg), progress=False)
    assert a["epochs"][0]["sha256"] == b["epochs"][0]["sha256"]
    assert set(a["test"]) == {"exact", "word_accuracy", "bleu1", "bleu2", "bleu3", "bleu4"}
    path = tmp_path / "a" / "captioner" / "epoch_01.pt"
    assert isinstance(load_captioner(path), Captioner)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="sha256"):
        load_captioner(path)


def test_shipped_captioner_captions_the_testbed():
    captioner = load_captioner()
    scenes = testbed.load_split("test", n=300, cache_dir=None, progress=False, workers=1)
    scores = caption_quality(captioner, scenes)
    assert scores["exact"] >= 0.35 and scores["bleu4"] >= 0.45, scores  # shipped: 0.433 and 0.542 on 2,000 scenes
    tokens = captioner.generate(TESTBED_NORMALIZE(scenes.pixels(range(4))))
    assert all(text.split()[0] in ("a", "an") for text in TESTBED_VOCAB.decode(tokens))
