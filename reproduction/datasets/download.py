"""Fetch and verify the paper profile's data: ``python -m reproduction.datasets.download {voc,coco,models,all}``.

Nothing else in revisal downloads. ``voc``: VOC2007 test via torchvision (md5-checked);
``coco``: COCO 2014 val images and annotations (archive integrity and image count checked);
``models``: TorchRay's four pointing-game checkpoints (sha256 prefix checked). ImageNet val cannot
be downloaded automatically; ``imagenet`` prints what to do.
"""

from __future__ import annotations

import argparse
import json
import zipfile

from reproduction.storage import project_path

COCO_URLS = {
    "val2014.zip": "http://images.cocodataset.org/zips/val2014.zip",
    "annotations_trainval2014.zip": "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
}
COCO_VAL2014_IMAGES = 40504


def voc(root: str = "data/voc") -> None:
    from reproduction.datasets.pascal import voc07

    dataset = voc07(root, download=True)
    print(f"VOC2007 test: {len(dataset)} images in {project_path(root)}")


def coco(root: str = "data/coco") -> None:
    from torchvision.datasets.utils import download_url

    folder = project_path(root)
    for name, url in COCO_URLS.items():
        archive = folder / name
        if not archive.is_file():
            download_url(url, str(folder), name)
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            if bad is not None:
                raise RuntimeError(f"{archive}: corrupt member {bad}; delete the file and run again")
            z.extractall(folder)
    annotations = json.loads((folder / "annotations" / "instances_val2014.json").read_text())
    found = len(list((folder / "val2014").glob("*.jpg")))
    if len(annotations["images"]) != COCO_VAL2014_IMAGES or found != COCO_VAL2014_IMAGES:
        raise RuntimeError(f"COCO val2014: expected {COCO_VAL2014_IMAGES} images, annotations list "
                           f"{len(annotations['images'])} and the folder holds {found}")
    print(f"COCO val2014: {found} images in {folder}")


def models(folder: str = "data/checkpoints/torchray") -> None:
    from torchvision.datasets.utils import download_url

    from reproduction.caffe_models import BASE_URL, CHECKPOINTS, checkpoint_path, verify_checkpoint

    for arch, dataset in CHECKPOINTS:
        path = checkpoint_path(arch, dataset, folder)
        if not path.is_file():
            download_url(BASE_URL + path.name, str(path.parent), path.name)
        verify_checkpoint(path)
        print(f"{path.name}: ok")


def imagenet() -> None:
    from reproduction.datasets.imagenet import IMAGENET_ROOT, imagenet_val

    try:
        print(f"ImageNet val: {len(imagenet_val())} images in {project_path(IMAGENET_ROOT)}")
    except FileNotFoundError as e:
        print(e)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m reproduction.datasets.download", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="+", choices=["voc", "coco", "models", "imagenet", "all"])
    args = p.parse_args(argv)
    steps = {"voc": voc, "coco": coco, "models": models, "imagenet": imagenet}
    for name in steps if "all" in args.what else args.what:
        steps[name]()


if __name__ == "__main__":
    main()
