"""An offline CLIPTokenizer for the toy world, built in memory.

The base vocabulary is CLIP's byte-level alphabet (each byte alone and with the end-of-word suffix
``</w>``), so any text encodes, falling back to characters. A small byte-pair-encoding pass over the
toy world's caption words then adds merges until every caption word is exactly one token: the text
encoder sees "red" as one symbol, not as r-e-d.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
EOW = "</w>"
MAX_LENGTH = 77  # CLIP's; without it the pipeline's padding="max_length" overflows


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges that turn each word (lower-case ASCII) into a single symbol.

    Standard BPE learning: repeatedly merge the most frequent adjacent pair over all words (ties broken
    lexicographically, so the result is deterministic) until no word has two symbols left. Applying the
    merges in order at encoding time replays this process, so each word ends as one token.
    """
    for w in words:
        if not w or not w.isascii() or not w.islower() or not w.isalpha():
            raise ValueError(f"caption words must be non-empty lower-case ASCII letters, got {w!r}")
    segs = {w: [*w[:-1], w[-1] + EOW] for w in sorted(set(words))}
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(p for s in segs.values() for p in zip(s, s[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {BOS: 0, EOS: 1}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    for ch in alphabet:
        vocab.setdefault(ch + EOW, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab


@lru_cache(maxsize=4)
def _cached(words: tuple[str, ...]) -> tuple[dict, list]:
    merges = learn_merges(list(words))
    return build_vocab(merges), [(a, b) for a, b in merges]


def build_tokenizer(words: tuple[str, ...] | None = None) -> CLIPTokenizer:
    """The toy CLIPTokenizer (vocabulary from ``anyi2v_lab.toy.world.CAPTION_WORDS`` by default)."""
    if words is None:
        from anyi2v_lab.toy.world import CAPTION_WORDS
        words = CAPTION_WORDS
    vocab, merges = _cached(tuple(sorted(set(words))))
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), unk_token=EOS, bos_token=BOS,
                         eos_token=EOS, pad_token=EOS, model_max_length=MAX_LENGTH)
