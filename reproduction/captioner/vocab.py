"""Word ↔ token-id mapping for captions.

Token sequences are ``LongTensor[N, T]``: the caption's words, then ``<eos>``, then ``<pad>`` up to
the batch's longest caption. ``<bos>`` never appears in a sequence: a captioner prepends its own
start symbol when it conditions on the previous word.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor

from reproduction.render import CLASSES, COLOUR_NAMES

SPECIALS = ("<pad>", "<bos>", "<eos>")


class Vocabulary:
    """A fixed word list; ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``.

    >>> vocab = TESTBED_VOCAB
    >>> tokens = vocab.encode(["a red star above a blue ring"])
    >>> vocab.decode(tokens)
    ['a red star above a blue ring']
    """

    pad, bos, eos = 0, 1, 2

    def __init__(self, words: Iterable[str]):
        self.itos = list(SPECIALS) + [w for w in words]
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("words: expected distinct words that are not special tokens")
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str], length: int | None = None) -> Tensor:
        """Captions → ``LongTensor[N, T]`` (words, ``<eos>``, ``<pad>``…); ``length`` pads to T."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a sequence of captions, got one string; wrap it in a list")
        rows = []
        for text in texts:
            unknown = [w for w in text.split() if w not in self.stoi]
            if unknown:
                raise ValueError(f"texts: words {unknown} in {text!r} are not in the vocabulary")
            rows.append([self.stoi[w] for w in text.split()] + [self.eos])
        t = max(len(r) for r in rows) if length is None else length
        if any(len(r) > t for r in rows):
            raise ValueError(f"length: {t} is shorter than the longest caption ({max(len(r) for r in rows)} tokens)")
        out = torch.full((len(rows), t), self.pad, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out

    def decode(self, tokens: Tensor) -> list[str]:
        """``[N, T]`` ids → captions (stops at ``<eos>``, skips ``<pad>``/``<bos>``)."""
        texts = []
        for row in tokens.tolist():
            words = []
            for i in row:
                if i == self.eos:
                    break
                if i not in (self.pad, self.bos):
                    words.append(self.itos[i])
            texts.append(" ".join(words))
        return texts

    def mask(self, tokens: Tensor) -> Tensor:
        """Bool ``[N, T]``: the positions that are caption words or the ``<eos>`` that ends them."""
        return tokens != self.pad


#: Every word the testbed's captions use (see :func:`reproduction.render.caption`).
TESTBED_VOCAB = Vocabulary(("a", "an", *COLOUR_NAMES, *CLASSES, "left", "right", "of", "above", "below"))
