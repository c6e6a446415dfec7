"""Data: shipped photos (``photos``), the synthetic testbed (``testbed``) and, for the paper
profile, VOC07 / COCO14 / ImageNet loaders (``pascal``, ``coco``, ``imagenet``)."""

from revisal.data.photos import PHOTOS, Photos, halves, image_file, photo, photos, side_by_side, to_pixels

__all__ = ["PHOTOS", "Photos", "halves", "image_file", "photo", "photos", "side_by_side", "to_pixels"]
