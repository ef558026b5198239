"""The prompt's tokens as the cross-attention keys see them (CLIP: BOS, the words' tokens, EOS, padding)."""
from __future__ import annotations


def prompt_tokens(tokenizer, prompt: str) -> list[str]:
    """The prompt's tokens without BOS, EOS and padding; ``words[j]`` is key ``j + 1`` of a cross-attention."""
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
    special = set(tokenizer.all_special_ids)
    return [tokenizer.convert_ids_to_tokens(i).replace("</w>", "") for i in ids if i not in special]


def token_positions(words: list[str], word: int | str) -> list[int]:
    """Key positions (1-based, after BOS) of ``word``: an index into ``words``, one token's text, or a
    phrase whose tokens appear consecutively (``"red square"``)."""
    if isinstance(word, int):
        if not -len(words) <= word < len(words):
            raise IndexError(f"word={word}, but the prompt has {len(words)} tokens: {words}")
        return [word % len(words) + 1]
    wanted = str(word).lower().split()
    for start in range(len(words)):
        joined, end = "", start
        while end < len(words) and len(joined) < len("".join(wanted)):
            joined += words[end].lower()
            end += 1
        if joined == "".join(wanted):
            return list(range(start + 1, end + 1))
    raise KeyError(f"word={word!r} is not in the prompt's tokens {words}; pass one of them or its index")
