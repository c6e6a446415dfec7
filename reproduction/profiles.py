"""The profiles: a notebook's (or the command line's) parameters resolved to models, pointing
sources, weight samples, image sets and checkpoints.

Notebooks pass their papermill parameters (a dict); the ``mini`` profile resolves them to the
testbed, the mini models and the shipped photos, the ``paper`` profile to VOC07/COCO14, ImageNet val
and the paper's models. Keys used here (with their ``mini`` defaults):

``pointing_dataset`` ("testbed"), ``pointing_n`` (None: the whole split), ``data_root`` (None),
``checkpoint_dir`` (None: data/checkpoints/torchray), ``verify_checkpoints`` (True),
``imagenet_pretrained`` (True), ``imagenet_root`` (None), ``weight_images`` (400),
``input_size`` (224, detection and ImageNet inputs), ``train`` (overrides of the mini models'
training config for the meta-dynamics checkpoints).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from reproduction import testbed
from reproduction.sources import DetectionSource, TestbedSource
from reproduction.storage import project_path
from revisal.models import ZooModel, load

Params = Mapping[str, Any]


def profile_model(name: str, params: Params) -> ZooModel:
    """:func:`revisal.models.load` with the profile's options: the checkpoint folder and checksum
    switch of TorchRay's models, and the pretrained switch of torchvision's (the paper profile
    downloads their weights, as its notebooks say)."""
    if name.endswith(("_voc", "_coco")):
        from reproduction.caffe_models import CHECKPOINTS, checkpoint_path

        arch, dataset = name.rsplit("_", 1)
        folder = params.get("checkpoint_dir") or "data/checkpoints/torchray"
        path = checkpoint_path(arch, dataset, folder) if (arch, dataset) in CHECKPOINTS else None
        return load(name, path=path, verify=params.get("verify_checkpoints", True))
    if name in ("vgg16", "resnet50"):
        return load(name, download=True, pretrained=params.get("imagenet_pretrained", True))
    return load(name)


def testbed_source(zoo, split: str = "test", n: int | None = None, size: int = 64, seed: int = 0,
                   progress: bool = False) -> TestbedSource:
    return TestbedSource(testbed.load_split(split, n, size, seed, progress=progress), zoo.normalize)


def detection_source(zoo, dataset: str, root: str | None = None, input_size: int = 224,
                     torchray_flags: bool = False) -> DetectionSource:
    """VOC07 test or COCO14 val for a model taking Caffe- or ImageNet-normalised input."""
    from reproduction.datasets import coco, pascal, pointing

    data = pascal.voc07(root or pascal.VOC_ROOT) if dataset == "voc07" else coco.coco14(root or coco.COCO_ROOT)
    flags = pointing.torchray_flags(dataset) if torchray_flags else None
    if torchray_flags and flags is None:
        raise ValueError(f"torchray_flags: TorchRay's difficult flags for {dataset} come with the torchray package "
                         "(pip install torchray); install it or set torchray_flags: false (the area rule)")
    return DetectionSource(dataset, data, zoo.normalize, input_size, flags=flags)


def weight_sample(zoo, dataset: str = "testbed", m: int = 400, size: int = 64, seed: int = 0,
                  source: DetectionSource | None = None) -> tuple[Tensor, Tensor]:
    """M images (and multi-hot labels) to compute data-driven layer weights from: testbed validation
    scenes (never the scored test split), or M images of a detection source sampled uniformly across
    classes, as the paper's § 4.2 says (:func:`revisal.layer_weights.sample_across_classes`)."""
    if dataset == "testbed":
        split = testbed.load_split("val", m, size, seed, progress=False)
        return zoo.normalize(split.pixels(range(len(split)))), split.labels
    if source is None:
        raise ValueError("source: detection datasets draw the weight sample from their source")
    from torchvision.transforms.functional import center_crop, to_tensor

    from reproduction.sources import ShorterSide
    from revisal.layer_weights import sample_across_classes

    labels = torch.zeros(len(source.dataset), source.num_classes)
    for p in source.pairs():
        labels[p.image, p.class_id] = 1
    chosen = sample_across_classes(labels, min(m, len(labels)), seed)
    images = []
    for i in chosen.tolist():
        image, _ = source.dataset[i]
        x = center_crop(ShorterSide(source.input_size)(to_tensor(image)), [source.input_size] * 2)
        images.append(source.normalize(x))
    return torch.stack(images), labels[chosen]


def pointing_source(zoo: ZooModel, params: Params):
    dataset = params.get("pointing_dataset", "testbed")
    if dataset == "testbed":
        return testbed_source(zoo, "test", params.get("pointing_n"))
    return detection_source(zoo, dataset, params.get("data_root"), params.get("input_size", 224),
                            torchray_flags=params.get("torchray_flags", False))


def layer_weight_sample(zoo: ZooModel, source, params: Params) -> tuple[Tensor, Tensor]:
    dataset = params.get("pointing_dataset", "testbed")
    return weight_sample(zoo, dataset, m=params.get("weight_images", 400),
                         source=None if dataset == "testbed" else source)


def image_set(zoo: ZooModel, params: Params, n: int, dataset: str | None = None) -> tuple[Tensor, Tensor]:
    """``n`` model-ready images and their labels: testbed validation scenes (label: the largest
    object's class) or ImageNet val (``dataset="imagenet"``): one image for each of ``n`` classes
    spread evenly over all classes (class ``⌊k·C/n⌋`` for k < n; the first image of each, in
    folder order), preprocessed as the authors' scripts do (:func:`reproduction.datasets.imagenet.torchray_imagenet`:
    the whole image resized to ``input_size``², no crop)."""
    dataset = dataset or params.get("image_dataset", "testbed")
    if dataset == "testbed":
        split = testbed.load_split("val", n, progress=False)
        return zoo.normalize(split.pixels(range(len(split)))), split.largest_classes()
    if dataset == "imagenet":
        from reproduction.datasets.imagenet import IMAGENET_ROOT, imagenet_val, torchray_imagenet

        data = imagenet_val(params.get("imagenet_root") or IMAGENET_ROOT,
                            transform=torchray_imagenet(params.get("input_size", 224), zoo.normalize), per_class=1)
        items = [data[i] for i in spread(len(data), n)]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
    raise ValueError(f"image_dataset: expected 'testbed' or 'imagenet', got {dataset!r}")


def spread(total: int, n: int) -> list[int]:
    """``min(n, total)`` indices spread evenly over ``range(total)``: ``⌊k·total/n⌋`` for k < n (all of
    them when ``n ≥ total``). Over one image per class, that samples every part of the class list
    instead of its first ``n`` classes (ImageNet's first 50 are all fish, birds and amphibians)."""
    if n >= total:
        return list(range(total))
    return [k * total // n for k in range(n)]


def training_checkpoints(name: str, params: Params, progress: bool = True, seed: int | None = None) -> list[Path]:
    """Per-epoch checkpoints of the dynamics run of a mini model (meta-saliency, Figs. 10, 11; its
    config is :data:`reproduction.train.DYNAMICS` updated by the ``train`` overrides): the shipped ones
    (``reproduction/weights/<name>_epochs[_seed<k>]/``, :func:`reproduction.train.ship_epochs`) when the
    requested training config is theirs, else those of an earlier run under ``out`` when present and
    matching, otherwise trained now (e.g. the smoke profile's tiny run). ``seed``: the training seed
    (else the ``train`` override's, else the default)."""
    from reproduction.train import DYNAMICS, TrainConfig, shipped_epochs_dir, train

    overrides = {**DYNAMICS, **(params.get("train") or {})}
    if seed is not None:
        overrides["seed"] = seed
    config = TrainConfig(model=name, out=overrides.pop("out", "data/models"), **overrides)
    if seed is not None and config.seed != 0:  # each seed trains into its own folder
        config = TrainConfig(**{**config.__dict__, "out": f"{config.out}/seed{config.seed}"})
    wanted = {k: v for k, v in config.__dict__.items() if k != "out"}
    for folder in (shipped_epochs_dir(name, config.seed), project_path(config.out) / name):
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
        if manifest is not None and {k: manifest["config"].get(k) for k in wanted} == wanted and all(
                (folder / e["file"]).is_file() for e in manifest["epochs"]):
            return [folder / e["file"] for e in manifest["epochs"]]
    manifest = train(config, progress=progress)
    return [project_path(config.out) / name / e["file"] for e in manifest["epochs"]]
