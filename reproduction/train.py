"""Train the mini models on the synthetic testbed (multi-label, BCE, as the paper's VOC fine-tuning).

    python -m reproduction.train                  # both models; also: make models
    python -m reproduction.train --model mini_resnet --dynamics --ship-epochs   # also: make epoch-weights
    python -m reproduction.train --help

Deterministic given ``--seed`` (and the thread count): the data order, augmentation and
initialisation all come from seeded generators and deterministic algorithms. A checkpoint is kept
per epoch under ``<out>/<model>/epoch_NN.pt`` (the meta-saliency notebook follows training
dynamics); ``manifest.json`` beside them records each file's sha256, the loss, training mAP (on the
first ``val_size`` training scenes, in eval mode) and validation mAP per epoch, the test mAP of the
last epoch, parameter count and wall time.

``--dynamics`` trains the run that notebook 04 follows (:data:`DYNAMICS`): a finite training set of
4000 scenes, seen without augmentation for 16 epochs, which the model overfits, so that seen and
unseen scenes differ for it, as the paper's Fig. 10 needs. Like the authors' ImageNet ResNet-50, it is
trained with cross-entropy to one label per image (the scene's largest object), so that the meta
step notebook 04 takes (cross-entropy to the explained class, the largest object) is a training step.

``--ship-epochs`` also writes every epoch in float16 to ``reproduction/weights/<model>_epochs/``
(:func:`ship_epochs`): notebook 04 follows meta-saliency over training on these instead of training
a model per run, so ``make figures`` never trains and its Figs. 10 and 11 do not depend on the CPU
that runs it (training reproduces bit for bit only on the same CPU and thread count).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction import testbed
from reproduction.classification import mean_average_precision
from reproduction.determinism import deterministic
from reproduction.mini_models import build, export
from reproduction.storage import project_path
from reproduction.testbed import TESTBED_NORMALIZE
from reproduction.zoo import WEIGHTS_DIR
from revisal.files import atomic_write, digest_bytes

#: Epochs per model: what reaches test mAP ≥ 0.90 inside the 8-minute CPU budget for both.
DEFAULT_EPOCHS = {"mini_vgg": 7, "mini_resnet": 6}
#: The training run notebook 04 follows epoch by epoch (Figs. 10, 11): a finite training set, seen
#: without augmentation, that the model overfits (training top-1 above validation top-1), with
#: cross-entropy to each scene's largest object (the loss of notebook 04's meta step).
DYNAMICS = {"train_size": 4000, "epochs": 16, "augment": False, "objective": "largest"}
#: Training losses (:class:`TrainConfig` ``objective``).
OBJECTIVES = ("multilabel", "largest")
#: :func:`ship_epochs` ships every SHIP_EVERY-th epoch (and the last): eight float16 checkpoints per
#: dynamics run, 5 MiB.
SHIP_EVERY = 2


@dataclass
class TrainConfig:
    model: str = "mini_vgg"
    epochs: int = 7
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    train_size: int = 16000
    val_size: int = 1000
    test_size: int = 2000
    image_size: int = 64
    seed: int = 0
    threads: int = 2
    augment: bool = True
    #: "multilabel": BCE on every present class (the mini models, as the paper's VOC fine-tuning);
    #: "largest": cross-entropy to the largest object's class (single-label, as ImageNet training)
    objective: str = "multilabel"
    out: str = "data/models"


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips and 90° turns: every testbed class is invariant to them."""
    n = x.shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    turns = int(torch.randint(4, (1,), generator=g))
    return torch.rot90(x, turns, dims=(-2, -1))


@torch.no_grad()
def scores(model: nn.Module, split: testbed.TestbedSplit, batch_size: int = 256) -> torch.Tensor:
    """``model``'s class scores ``[N, C]`` on a testbed split (eval mode)."""
    model.eval()
    return torch.cat([model(TESTBED_NORMALIZE(split.pixels(range(i, min(i + batch_size, len(split))))))
                      for i in range(0, len(split), batch_size)])


def evaluate(model: nn.Module, split: testbed.TestbedSplit, batch_size: int = 256) -> float:
    """Mean average precision of ``model`` on a testbed split."""
    return mean_average_precision(scores(model, split, batch_size), split.labels)


def fit(model: nn.Module, split: testbed.TestbedSplit) -> dict[str, float]:
    """How well ``model`` fits a split: mAP over every present class, and top-1 accuracy for each
    scene's largest object (the single label of ``objective="largest"``)."""
    s = scores(model, split)
    return {"map": mean_average_precision(s, split.labels),
            "top1": float((s.argmax(1) == split.largest_classes()).double().mean())}


def _save(state: dict, path: Path) -> str:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())
    return digest_bytes(buf.getvalue())


def train(config: TrainConfig, progress: bool = True) -> dict:
    """Train one mini model; returns the manifest (also written to ``<out>/<model>/manifest.json``)."""
    with deterministic(config.seed, config.threads):
        return _train(config, progress)


def _train(config: TrainConfig, progress: bool) -> dict:
    train_set = testbed.load_split("train", config.train_size, config.image_size, progress=progress)
    val_set = testbed.load_split("val", config.val_size, config.image_size, progress=progress)
    seen = testbed.load_split("train", min(config.train_size, config.val_size), config.image_size, progress=False)
    test_set = testbed.load_split("test", config.test_size, config.image_size, progress=progress)

    if config.objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {config.objective!r}")
    largest = train_set.largest_classes()
    model = build(config.model, len(testbed.CLASSES), for_training=True)
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on CPU
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * (len(train_set) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.2)
    g = torch.Generator().manual_seed(config.seed)
    folder = project_path(config.out) / config.model
    history, start = [], time.perf_counter()

    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(train_set), generator=g)
        batches = range(len(train_set) // config.batch_size)
        bar = tqdm(batches, desc=f"{config.model} epoch {epoch}/{config.epochs}", unit="batch", disable=not progress)
        total, count, tick = 0.0, 0, time.perf_counter()
        for b in bar:
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            x = TESTBED_NORMALIZE(train_set.pixels(idx))
            x = (_augment(x, g) if config.augment else x).contiguous(memory_format=torch.channels_last)
            loss = (F.cross_entropy(model(x), largest[idx]) if config.objective == "largest" else
                    F.binary_cross_entropy_with_logits(model(x), train_set.labels[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            if b % 20 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}", img_s=f"{count / (time.perf_counter() - tick):.0f}", refresh=False)
        exported = export(model)
        on_val, on_train = fit(exported, val_set), fit(exported, seen)
        state = {k: v.contiguous() for k, v in exported.state_dict().items()}
        digest = _save({"model": config.model, "epoch": epoch, "state_dict": state},
                       folder / f"epoch_{epoch:02d}.pt")
        history.append({"epoch": epoch, "train_loss": total / count, "train_map": on_train["map"],
                        "val_map": on_val["map"], "train_top1": on_train["top1"], "val_top1": on_val["top1"],
                        "sha256": digest,
                        "file": f"epoch_{epoch:02d}.pt"})
        if progress:
            print(f"{config.model} epoch {epoch}: loss {total / count:.4f}, mAP train {on_train['map']:.4f} "
                  f"val {on_val['map']:.4f}, top-1 (largest object) train {on_train['top1']:.4f} val {on_val['top1']:.4f}")

    manifest = {
        "config": asdict(config),
        "parameters": params,
        "train_seconds": round(time.perf_counter() - start, 1),
        "test_map": evaluate(export(model), test_set),
        "epochs": history,
        "torch": torch.__version__,
    }
    atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    if progress:
        print(f"{config.model}: test mAP {manifest['test_map']:.4f}, {params} parameters, "
              f"{manifest['train_seconds']:.0f} s")
    return manifest


def main(argv: list[str] | None = None) -> None:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m reproduction.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=["mini_vgg", "mini_resnet"], choices=["mini_vgg", "mini_resnet"],
                   help="which mini model(s) to train")
    p.add_argument("--dynamics", action="store_true",
                   help=f"the run notebook 04 follows: {DYNAMICS} unless given below")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the training split (default per model: {DEFAULT_EPOCHS})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak AdamW learning rate (one-cycle schedule)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--train-size", type=int, default=None, help=f"testbed training scenes (default {defaults.train_size})")
    p.add_argument("--no-augment", action="store_true", help="no random flips and turns")
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="multilabel: BCE on every present class (default); largest: cross-entropy to the largest "
                        "object's class")
    p.add_argument("--val-size", type=int, default=defaults.val_size, help="validation scenes (mAP per epoch)")
    p.add_argument("--test-size", type=int, default=defaults.test_size, help="test scenes (final mAP)")
    p.add_argument("--image-size", type=int, default=defaults.image_size, help="testbed image side in pixels")
    p.add_argument("--seed", type=int, default=defaults.seed, help="initialisation, data order and augmentation")
    p.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads")
    p.add_argument("--out", default=defaults.out, help="checkpoint folder (relative to the repository root)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--install", action="store_true",
                   help="copy the final checkpoint into reproduction/weights/ (what `models.load(name)` uses)")
    p.add_argument("--ship-epochs", action="store_true",
                   help=f"write every {SHIP_EVERY}nd epoch in float16 to reproduction/weights/<model>_epochs/ "
                        "(notebook 04's dynamics)")
    args = p.parse_args(argv)
    base = DYNAMICS if args.dynamics else {}
    for name in args.model:
        config = TrainConfig(
            model=name, epochs=args.epochs or base.get("epochs") or DEFAULT_EPOCHS[name], batch_size=args.batch_size,
            lr=args.lr, weight_decay=args.weight_decay,
            train_size=args.train_size or base.get("train_size") or defaults.train_size, val_size=args.val_size,
            test_size=args.test_size, image_size=args.image_size, seed=args.seed, threads=args.threads,
            augment=not args.no_augment and base.get("augment", True),
            objective=args.objective or base.get("objective", defaults.objective), out=args.out,
        )
        manifest = train(config, progress=not args.quiet)
        finish(manifest, args.install)
        if args.ship_epochs:
            ship_epochs(manifest)


def finish(manifest: dict, install_it: bool) -> None:
    """Say whether a run's final checkpoint is bit-identical to the shipped weights (the sha256 in
    ``reproduction/weights/<model>.json``) and, if ``install_it``, :func:`install` it."""
    name, last = manifest["config"]["model"], manifest["epochs"][-1]
    shipped = WEIGHTS_DIR / f"{name}.json"
    if shipped.is_file():
        same = json.loads(shipped.read_text())["sha256"] == last["sha256"]
        print(f"{name}: final checkpoint {'is bit-identical to' if same else 'differs from'} the shipped weights")
    if install_it:
        install(manifest, project_path(manifest["config"]["out"]) / name / last["file"])


def install(manifest: dict, checkpoint: Path) -> None:
    """Make ``checkpoint`` the shipped weights of its model, with a summary beside it."""
    name = manifest["config"]["model"]
    atomic_write(WEIGHTS_DIR / f"{name}.pt", checkpoint.read_bytes())
    summary = {k: v for k, v in manifest.items() if k != "epochs"}
    summary.update({k: v for k, v in manifest["epochs"][-1].items() if k not in ("epoch", "file")})
    atomic_write(WEIGHTS_DIR / f"{name}.json", json.dumps(summary, indent=2) + "\n")
    print(f"{name}: installed {checkpoint} as {WEIGHTS_DIR / (name + '.pt')}")


def epoch_of(checkpoint: str | Path) -> int:
    """The epoch number of a checkpoint written here (``epoch_NN.pt``)."""
    stem = Path(checkpoint).stem
    if not stem.startswith("epoch_") or not stem[6:].isdigit():
        raise ValueError(f"checkpoint: expected a file named epoch_NN.pt, got {str(checkpoint)!r}")
    return int(stem[6:])


def run_history(checkpoint: str | Path) -> list[dict]:
    """The per-epoch record (``epoch``, ``train_loss``, ``train_map``, ``val_map``, …) of the training
    run a checkpoint belongs to, from the ``manifest.json`` beside it (every epoch of the run, also
    those :func:`ship_epochs` left out)."""
    path = Path(checkpoint).parent / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no manifest.json beside {checkpoint}")
    manifest = json.loads(path.read_text())
    return manifest.get("history", manifest["epochs"])


def shipped_epochs_dir(name: str, seed: int = 0) -> Path:
    """Where :func:`ship_epochs` writes a model's per-epoch checkpoints: ``reproduction/weights/<model>_epochs``
    for the default seed 0, ``<model>_epochs_seed<k>`` for another training seed k."""
    return WEIGHTS_DIR / (f"{name}_epochs" if seed == 0 else f"{name}_epochs_seed{seed}")


def ship_epochs(manifest: dict, dtype: torch.dtype = torch.float16, every: int = SHIP_EVERY) -> Path:
    """Copy every ``every``-th epoch of a training run (and its last) into :func:`shipped_epochs_dir`,
    floating tensors cast to ``dtype`` (float16 halves the size; the cast is deterministic, so the
    same run gives the same bytes), with a ``manifest.json`` as the run's (config, per-epoch sha256 of
    the shipped files) that :func:`revisal.models.load` verifies each file against."""
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every: expected a positive int, got {every!r}")
    config = manifest["config"]
    source = project_path(config["out"]) / config["model"]
    folder = shipped_epochs_dir(config["model"], config.get("seed", 0))
    last = manifest["epochs"][-1]["epoch"]
    epochs = []
    for entry in manifest["epochs"]:
        if entry["epoch"] % every and entry["epoch"] != last:
            continue
        saved = torch.load(source / entry["file"], map_location="cpu", weights_only=True)
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in saved["state_dict"].items()}
        digest = _save({"model": config["model"], "epoch": entry["epoch"], "state_dict": state},
                       folder / entry["file"])
        epochs.append({**entry, "sha256": digest, "trained_sha256": entry["sha256"]})
    history = [{k: v for k, v in e.items() if k not in ("sha256", "file")} for e in manifest["epochs"]]
    shipped = {"config": {k: v for k, v in config.items() if k != "out"},  # the same bytes wherever it trained
               **{k: v for k, v in manifest.items() if k not in ("config", "epochs", "train_seconds")},
               "dtype": str(dtype).removeprefix("torch."), "epochs": epochs, "history": history}
    atomic_write(folder / "manifest.json", json.dumps(shipped, indent=2) + "\n")
    size = sum((folder / e["file"]).stat().st_size for e in epochs)
    print(f"{config['model']}: {len(epochs)} epochs in {dtype} written to {folder} ({size / 2**20:.1f} MiB)")
    return folder


if __name__ == "__main__":
    main()
