"""Loaders of the paper profile's datasets (VOC07, COCO14, ImageNet val) and their download."""
