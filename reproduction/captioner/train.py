"""Train the testbed captioner (mini ResNet encoder, fine-tuned, + GRU decoder) on the testbed's captions.

    python -m reproduction.captioner            # also part of `make models`
    python -m reproduction.captioner --install  # make it the shipped reproduction/weights/captioner.pt

Deterministic given ``--seed`` and the thread count. The encoder starts from the shipped mini ResNet
(trained on the same scenes for multi-label classification) and is fine-tuned with the decoder
(teacher forcing, per-token cross-entropy). Its classification training discarded colour (a linear
probe on its layer2..4 features guesses the largest object's colour at chance), so a frozen encoder
could not name colours. Fine-tuning on the caption loss alone barely brings colour back (20% of
colour words right after 4 epochs), so the encoder also gets an auxiliary multi-label loss on which
colours are present (BCE from its pooled last stage), and gradients are clipped to norm 1 (the
usual safeguard for recurrent decoders). No augmentation: flips would change "left of"/"above".

Loss per batch: mean over caption tokens of −log p(w_t | w_<t, I), plus
BCE(W_c · spatial mean of layer4(I), colours present).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction import testbed
from reproduction.captioner.model import Captioner
from reproduction.captioner.scores import caption_scores
from reproduction.captioner.vocab import TESTBED_VOCAB
from reproduction.determinism import deterministic
from reproduction.mini_models import MiniResNet
from reproduction.storage import project_path
from reproduction.testbed import TESTBED_NORMALIZE
from reproduction.train import TrainConfig, _save, finish
from reproduction.zoo import WEIGHTS_DIR, load_verified_checkpoint
from revisal.files import atomic_write
from revisal.models import load as load_model

MAX_LEN = 9  # the longest testbed caption: 8 words + <eos>


@dataclass
class CaptionerConfig(TrainConfig):
    """The mini models' training knobs, with the captioner's defaults."""

    model: str = "captioner"
    epochs: int = 6
    batch_size: int = 64


def captions(split: testbed.TestbedSplit) -> list[str]:
    """Every scene's reference caption."""
    return [split.caption(i) for i in range(len(split))]


def colours_present(split: testbed.TestbedSplit) -> Tensor:
    """Multi-hot ``[N, colours]``: which colours the scene's objects have."""
    present = torch.zeros(len(split), len(testbed.COLOUR_NAMES))
    rows, slots = np.nonzero(split.arrays["colours"] >= 0)
    present[rows, split.arrays["colours"][rows, slots]] = 1.0
    return present


@torch.no_grad()
def caption_quality(captioner: Captioner, split: testbed.TestbedSplit, batch_size: int = 250) -> dict[str, float]:
    """Greedy captions of ``split`` scored against the references (exact match, word accuracy, BLEU-1..4)."""
    captioner.eval()
    generated = []
    for i in range(0, len(split), batch_size):
        x = TESTBED_NORMALIZE(split.pixels(range(i, min(i + batch_size, len(split)))))
        generated += captioner.vocab.decode(captioner.generate(x, max_len=MAX_LEN + 2))
    return caption_scores(generated, captions(split))


def train_captioner(config: CaptionerConfig, progress: bool = True) -> dict:
    """Train the captioner; returns the manifest (also ``<out>/captioner/manifest.json``)."""
    with deterministic(config.seed, config.threads):
        return _train_captioner(config, progress)


def _train_captioner(config: CaptionerConfig, progress: bool) -> dict:
    train_set = testbed.load_split("train", config.train_size, config.image_size, progress=progress)
    val_set = testbed.load_split("val", config.val_size, config.image_size, progress=progress)
    test_set = testbed.load_split("test", config.test_size, config.image_size, progress=progress)
    tokens = TESTBED_VOCAB.encode(captions(train_set), length=MAX_LEN)
    colours = colours_present(train_set)

    # the mini ResNet's trained weights in the captioner's encoder layout: its last stage downsamples
    # (last_stride=2, a 4×4 grid at 64²), which changes no parameter's shape
    trained = load_model("mini_resnet").model
    encoder = MiniResNet(num_classes=trained.fc.out_features, last_stride=2)
    encoder.load_state_dict(trained.state_dict())
    captioner = Captioner(TESTBED_VOCAB, encoder, image_size=config.image_size).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in captioner.parameters())
    opt = torch.optim.AdamW(captioner.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * (len(train_set) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.2)
    g = torch.Generator().manual_seed(config.seed)
    folder = project_path(config.out) / config.model
    history, start = [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        captioner.train()
        order = torch.randperm(len(train_set), generator=g)
        batches = range(len(train_set) // config.batch_size)
        bar = tqdm(batches, desc=f"captioner epoch {epoch}/{config.epochs}", unit="batch", disable=not progress)
        total, words = 0.0, 0
        for b in bar:
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            x = TESTBED_NORMALIZE(train_set.pixels(idx)).contiguous(memory_format=torch.channels_last)
            y = tokens[idx]
            count = int(TESTBED_VOCAB.mask(y).sum())
            features = captioner.encoder.features(x)
            nll = -captioner.decoder.log_probs(captioner.embed_features(features), y).sum() / count
            aux = F.binary_cross_entropy_with_logits(captioner.colour_head(features.mean(dim=(2, 3))), colours[idx])
            opt.zero_grad(set_to_none=True)
            (nll + aux).backward()
            torch.nn.utils.clip_grad_norm_(captioner.parameters(), 1.0)
            opt.step()
            sched.step()
            total, words = total + float(nll.detach()) * count, words + count
            if b % 20 == 0:
                bar.set_postfix(nll=f"{total / words:.4f}", refresh=False)
        scores = caption_quality(captioner, val_set)
        state = {k: v.contiguous() for k, v in captioner.state_dict().items()}
        digest = _save({"model": config.model, "epoch": epoch, "state_dict": state}, folder / f"epoch_{epoch:02d}.pt")
        history.append({"epoch": epoch, "train_nll": total / words, "val": scores, "sha256": digest,
                        "file": f"epoch_{epoch:02d}.pt"})
        if progress:
            print(f"captioner epoch {epoch}: nll {total / words:.4f}, val exact {scores['exact']:.3f}, "
                  f"BLEU-4 {scores['bleu4']:.3f}")
    manifest = {"config": asdict(config), "parameters": params, "train_seconds": round(time.perf_counter() - start, 1),
                "test": caption_quality(captioner, test_set), "epochs": history, "torch": torch.__version__}
    atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    if progress:
        t = manifest["test"]
        print(f"captioner: test exact match {t['exact']:.3f}, word accuracy {t['word_accuracy']:.3f}, "
              f"BLEU-1..4 {t['bleu1']:.3f}/{t['bleu2']:.3f}/{t['bleu3']:.3f}/{t['bleu4']:.3f}; "
              f"{params} parameters, {manifest['train_seconds']:.0f} s")
    return manifest


def load_captioner(checkpoint: str | Path | None = None) -> Captioner:
    """The shipped captioner (``reproduction/weights/captioner.pt``, sha256-checked against its JSON) or
    any checkpoint written by :func:`train_captioner`; in eval mode."""
    path = WEIGHTS_DIR / "captioner.pt" if checkpoint is None else Path(checkpoint)
    saved = load_verified_checkpoint(path, shipped=checkpoint is None, retrain="`python -m reproduction.captioner`")
    captioner = Captioner(TESTBED_VOCAB)
    captioner.load_state_dict(saved["state_dict"])
    return captioner.eval()


def greedy_captions(captioner: Captioner, images: Tensor, max_len: int = MAX_LEN + 2) -> tuple[Tensor, list[str]]:
    """Greedy token ids ``[N, T]`` (for :func:`caption_saliency`) and their text."""
    tokens = captioner.generate(images, max_len=max_len)
    return tokens, captioner.vocab.decode(tokens)


def main(argv: list[str] | None = None) -> None:
    defaults = CaptionerConfig()
    p = argparse.ArgumentParser(prog="python -m reproduction.captioner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for field, value in asdict(defaults).items():
        if field != "model":
            p.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--install", action="store_true", help="copy the final checkpoint to reproduction/weights/captioner.pt")
    args = vars(p.parse_args(argv))
    quiet, do_install = args.pop("quiet"), args.pop("install")
    config = CaptionerConfig(**args)
    finish(train_captioner(config, progress=not quiet), do_install)


if __name__ == "__main__":
    main()
