"""Data: shipped photos (``photos``), the synthetic testbed (``testbed``) and, for the paper
profile, VOC07 / COCO14 / ImageNet loaders (``pascal``, ``coco``, ``imagenet``)."""

from .photos import PHOTOS, Photos, photo, photos, to_pixels

__all__ = ["PHOTOS", "Photos", "photo", "photos", "to_pixels"]
