"""Explaining a captioner (paper supp. F): a small testbed captioner trained here, a protocol for
bringing your own, and saliency for a caption's log-probability (whole caption or one word).

>>> from reproduction.captioner import load_captioner, greedy_captions, caption_saliency
>>> captioner = load_captioner()                                            # doctest: +SKIP
>>> tokens, texts = greedy_captions(captioner, images)                      # doctest: +SKIP
>>> maps = caption_saliency(captioner, images, tokens, ["encoder.layer3", "encoder.layer4"])  # doctest: +SKIP
"""

from reproduction.captioner.explain import caption_saliency, mask_mass, named_objects
from reproduction.captioner.model import Captioner, CaptionModel, RecurrentDecoder, TorchvisionCaptioner
from reproduction.captioner.train import CaptionerConfig, caption_quality, greedy_captions, load_captioner, train_captioner
from reproduction.captioner.vocab import TESTBED_VOCAB, Vocabulary

__all__ = [
    "CaptionModel", "Captioner", "CaptionerConfig", "RecurrentDecoder", "TESTBED_VOCAB", "TorchvisionCaptioner",
    "Vocabulary", "caption_quality", "caption_saliency", "greedy_captions", "load_captioner", "mask_mass",
    "named_objects", "train_captioner",
]
