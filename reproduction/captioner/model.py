r"""Encoder-decoder captioners and the protocol :func:`reproduction.captioner.caption_saliency` needs.

**Protocol** (bring your own captioner): an ``nn.Module`` with

``log_probs(images: Tensor[N, C, H, W], tokens: LongTensor[N, T]) -> Tensor[N, T]``

returning :math:`\log p(w_t \mid w_{<t}, I)` for every given token (teacher forcing; ``tokens`` are
words then ``<eos>`` then ``<pad>``, see :mod:`.vocab`), with 0 at padded positions, and
differentiable with respect to the encoder's activations. :class:`Captioner` (the testbed's, trained
here) and :class:`TorchvisionCaptioner` (a torchvision ResNet encoder with an LSTM, neuraltalk2-style,
as in the paper's supplementary F) both follow it.

Both decode with :class:`RecurrentDecoder`:

.. math::
    h_0 = \tanh(W_h v), \qquad x_t = [E(w_{t-1});\, v],\ w_0 = \langle bos\rangle, \qquad
    h_t = \mathrm{RNN}(x_t, h_{t-1}), \qquad \log p(w_t \mid w_{<t}, I) = \log\mathrm{softmax}(W_o h_t)_{w_t}

where ``v`` is the encoder's image embedding.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reproduction.captioner.vocab import Vocabulary
from reproduction.mini_models import MiniResNet
from reproduction.render import COLOUR_NAMES


@runtime_checkable
class CaptionModel(Protocol):
    """What :func:`reproduction.captioner.caption_saliency` needs from a captioner (an ``nn.Module``)."""

    def log_probs(self, images: Tensor, tokens: Tensor) -> Tensor:  # pragma: no cover - protocol
        ...


class RecurrentDecoder(nn.Module):
    """GRU or LSTM language model conditioned on an image embedding ``v`` (see the module docstring)."""

    def __init__(self, vocab: Vocabulary, image_dim: int, hidden: int = 192, embed: int = 48,
                 cell: Literal["gru", "lstm"] = "gru"):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell: expected 'gru' or 'lstm', got {cell!r}")
        self.vocab, self.cell = vocab, cell
        self.embed = nn.Embedding(len(vocab), embed)
        self.init_h = nn.Linear(image_dim, hidden)
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(embed + image_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, len(vocab))

    def _state(self, v: Tensor):
        h = torch.tanh(self.init_h(v)).unsqueeze(0)
        return h if self.cell == "gru" else (h, torch.zeros_like(h))

    def _step_inputs(self, previous: Tensor, v: Tensor) -> Tensor:
        return torch.cat([self.embed(previous), v.unsqueeze(1).expand(-1, previous.shape[1], -1)], dim=2)

    def logits(self, v: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced next-word logits ``[N, T, V]`` for ``tokens`` ``[N, T]``."""
        previous = torch.cat([torch.full_like(tokens[:, :1], self.vocab.bos), tokens[:, :-1]], dim=1)
        hidden, _ = self.rnn(self._step_inputs(previous, v), self._state(v))
        return self.out(hidden)

    def log_probs(self, v: Tensor, tokens: Tensor) -> Tensor:
        """``log p(tokens[:, t] | tokens[:, :t], v)`` as ``[N, T]``, 0 where ``tokens`` is ``<pad>``."""
        lp = F.log_softmax(self.logits(v, tokens), dim=2).gather(2, tokens.unsqueeze(2)).squeeze(2)
        return lp * self.vocab.mask(tokens)

    @torch.no_grad()
    def greedy(self, v: Tensor, max_len: int) -> Tensor:
        """Greedy decoding: the arg-max word at every step until ``<eos>`` (then ``<pad>``)."""
        n = v.shape[0]
        word = torch.full((n, 1), self.vocab.bos, dtype=torch.long, device=v.device)
        state, done, out = self._state(v), torch.zeros(n, dtype=torch.bool, device=v.device), []
        for _ in range(max_len):
            hidden, state = self.rnn(self._step_inputs(word, v), state)
            word = self.out(hidden).argmax(2)
            out.append(torch.where(done[:, None], torch.full_like(word, self.vocab.pad), word))
            done |= word[:, 0] == self.vocab.eos
            if bool(done.all()):
                break
        return torch.cat(out, dim=1)


class Captioner(nn.Module):
    r"""The testbed captioner: the mini ResNet as encoder, its last stage's spatial grid kept (the
    captions say where objects are), and a GRU decoder.

    ``v = tanh(W_v · vec(ReLU(conv_{1×1}(layer4(x)))))``; then :class:`RecurrentDecoder`. Images are
    normalised like the mini models' (``reproduction.testbed.TESTBED_NORMALIZE``). Module names follow
    the mini ResNet's under ``encoder.`` (``encoder.layer2`` … ``encoder.layer4``).
    """

    def __init__(self, vocab: Vocabulary, encoder: MiniResNet | None = None, image_size: int = 64,
                 reduced: int = 32, hidden: int = 192, embed: int = 48):
        super().__init__()
        self.vocab = vocab
        self.encoder = encoder if encoder is not None else MiniResNet(num_classes=1, last_stride=2)
        self.encoder.fc = nn.Identity()  # the classifier head is not part of the captioner
        channels = self.encoder.layer4[0].conv2.out_channels
        grid = -(-image_size // 16)  # stem and three stages halve the side
        self.reduce = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.ReLU())
        self.project = nn.Sequential(nn.Linear(reduced * grid * grid, hidden), nn.Tanh())
        self.decoder = RecurrentDecoder(vocab, hidden, hidden=hidden, embed=embed, cell="gru")
        # Training-only head: which colours are present, from the pooled last stage (see train.py).
        self.colour_head = nn.Linear(channels, len(COLOUR_NAMES))

    def embed_features(self, features: Tensor) -> Tensor:
        """The image embedding ``v`` ``[N, hidden]`` from the last stage's activations."""
        return self.project(self.reduce(features).flatten(1))

    def embed_images(self, images: Tensor) -> Tensor:
        """The image embedding ``v`` ``[N, hidden]``."""
        return self.embed_features(self.encoder.features(images))

    def log_probs(self, images: Tensor, tokens: Tensor) -> Tensor:
        """``[N, T]`` per-token log-probabilities (the :class:`CaptionModel` protocol)."""
        return self.decoder.log_probs(self.embed_images(images), tokens)

    def generate(self, images: Tensor, max_len: int = 12) -> Tensor:
        """Greedy captions as token ids ``[N, ≤ max_len]``."""
        return self.decoder.greedy(self.embed_images(images), max_len)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        return self.log_probs(images, tokens)


class TorchvisionCaptioner(nn.Module):
    """Bring-your-own example: a torchvision ResNet (e.g. ``resnet101``) encoder, globally pooled,
    embedded and fed to an LSTM at every step (the paper's supp. F setting: ResNet-101 + LSTM).

    >>> from torchvision.models import resnet101
    >>> captioner = TorchvisionCaptioner(resnet101(weights=None), TESTBED_VOCAB)   # doctest: +SKIP
    >>> maps = caption_saliency(captioner, images, tokens, layers=["encoder.layer3", "encoder.layer4"])  # doctest: +SKIP

    Any module with a ``log_probs(images, tokens) -> [N, T]`` method works the same way; this class
    only shows the wiring.
    """

    def __init__(self, resnet: nn.Module, vocab: Vocabulary, hidden: int = 512, embed: int = 256):
        super().__init__()
        if not hasattr(resnet, "layer4") or not hasattr(resnet, "fc"):
            raise TypeError("resnet: expected a torchvision ResNet (with layer1..layer4 and fc)")
        self.vocab = vocab
        self.encoder = resnet
        features = resnet.fc.in_features
        self.encoder.fc = nn.Identity()  # forward() now returns the pooled features
        self.project = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.decoder = RecurrentDecoder(vocab, hidden, hidden=hidden, embed=embed, cell="lstm")

    def log_probs(self, images: Tensor, tokens: Tensor) -> Tensor:
        return self.decoder.log_probs(self.project(self.encoder(images)), tokens)

    def generate(self, images: Tensor, max_len: int = 16) -> Tensor:
        return self.decoder.greedy(self.project(self.encoder(images)), max_len)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        return self.log_probs(images, tokens)
