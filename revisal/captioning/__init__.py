"""Explaining a captioner (paper supp. F): a small testbed captioner trained here, a protocol for
bringing your own, and saliency for a caption's log-probability (whole caption or one word).

>>> from revisal.captioning import load_captioner, greedy_captions, caption_saliency
>>> captioner = load_captioner()                                            # doctest: +SKIP
>>> tokens, texts = greedy_captions(captioner, images)                      # doctest: +SKIP
>>> maps = caption_saliency(captioner, images, tokens, ["encoder.layer3", "encoder.layer4"])  # doctest: +SKIP
"""

from .explain import caption_saliency, mask_mass, named_objects
from .model import Captioner, CaptionModel, RecurrentDecoder, TorchvisionCaptioner
from .train import CaptionerConfig, evaluate, greedy_captions, load_captioner, train_captioner
from .vocab import TESTBED_VOCAB, Vocabulary

__all__ = [
    "CaptionModel", "Captioner", "CaptionerConfig", "RecurrentDecoder", "TESTBED_VOCAB", "TorchvisionCaptioner",
    "Vocabulary", "caption_saliency", "evaluate", "greedy_captions", "load_captioner", "mask_mass",
    "named_objects", "train_captioner",
]
