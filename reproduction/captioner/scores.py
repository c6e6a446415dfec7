r"""Caption quality: exact match, token accuracy and corpus BLEU-1..4 (one reference per caption)."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from typing import Sequence


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _check_captions(captions: object, name: str) -> None:
    """A sequence of strings (a bare string would be scored character by character)."""
    if isinstance(captions, (str, bytes)) or not isinstance(captions, Sequence):
        raise TypeError(f"{name}: expected a sequence of caption strings, got {type(captions).__name__}")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"{name}[{i}]: expected a caption string, got {caption!r}")


def corpus_bleu(candidates: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    r"""Corpus BLEU-N (Papineni et al., 2002) with one reference per candidate, no smoothing.

    .. math::
        p_n = \frac{\sum_i \sum_{g \in G_n(c_i)} \min(\#_{c_i} g, \#_{r_i} g)}{\sum_i |G_n(c_i)|},\quad
        \mathrm{BP} = \begin{cases}1 & c > r\\ e^{1 - r/c} & c \le r\end{cases},\quad
        \mathrm{BLEU}_N = \mathrm{BP}\,\exp\Big(\frac1N\sum_{n=1}^N \log p_n\Big)

    with :math:`G_n` the n-grams (counted with multiplicity), ``c`` and ``r`` the total candidate
    and reference lengths in words. 0 when some :math:`p_n` is 0 or there are no candidate words.
    """
    _check_captions(candidates, "candidates")
    _check_captions(references, "references")
    if len(candidates) != len(references):
        raise ValueError(f"references: expected {len(candidates)} references, got {len(references)}")
    if isinstance(max_n, bool) or not isinstance(max_n, numbers.Integral) or not 1 <= max_n <= 4:
        raise ValueError(f"max_n: expected an int in 1..4, got {max_n!r}")
    matches, totals = [0] * max_n, [0] * max_n
    c_len = r_len = 0
    for cand, ref in zip(candidates, references):
        c, r = cand.split(), ref.split()
        c_len, r_len = c_len + len(c), r_len + len(r)
        for n in range(1, max_n + 1):
            cg, rg = _ngrams(c, n), _ngrams(r, n)
            matches[n - 1] += sum(min(k, rg[g]) for g, k in cg.items())
            totals[n - 1] += max(0, len(c) - n + 1)
    if c_len == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    bp = 1.0 if c_len > r_len else math.exp(1 - r_len / c_len)
    return bp * math.exp(log_p)


def caption_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``exact`` (fraction of captions equal to their reference), ``word_accuracy`` (fraction of
    reference words reproduced at the same position) and ``bleu1``..``bleu4``."""
    _check_captions(candidates, "candidates")
    _check_captions(references, "references")
    if len(candidates) != len(references) or not candidates:
        raise ValueError(f"references: expected {len(candidates)} (≥ 1) references, got {len(references)}")
    exact = sum(c == r for c, r in zip(candidates, references)) / len(candidates)
    same = sum(a == b for c, r in zip(candidates, references) for a, b in zip(c.split(), r.split()))
    words = sum(len(r.split()) for r in references)
    scores = {"exact": exact, "word_accuracy": same / max(words, 1)}
    scores.update({f"bleu{n}": corpus_bleu(candidates, references, n) for n in range(1, 5)})
    return scores
