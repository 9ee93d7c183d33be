"""A CLIP BPE tokenizer over the toy world's vocabulary, saved in the standard CLIPTokenizer files.

Every toy word is one token; anything else falls back to byte-level characters, so any prompt
tokenizes (unknown words just carry little meaning to the toy prior).
"""

from __future__ import annotations

import json
from pathlib import Path

from dreamflow.toyworld.scenes import COLOURS, PATTERNS, SHAPES

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
TOY_WORDS = ["a", "an", ",", "with", "on", "front", "side", "back", "overhead", "view", *COLOURS, *SHAPES,
             *PATTERNS[1:]]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _apply_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one pre-tokenized word (characters, last one suffixed with </w>)."""
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        candidates = [(rank, i) for rank, i in pairs if rank is not None]
        if not candidates:
            break
        best = min(candidates)[0]
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and ranks.get((parts[i], parts[i + 1])) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def build_merges(words: list[str]) -> list[tuple[str, str]]:
    """Merges that turn each word into a single token; later merges never change earlier words."""
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(parts := _apply_bpe(word, ranks)) > 1:
            pair = (parts[0], parts[1])
            ranks[pair] = len(merges)
            merges.append(pair)
    return merges


def write_tokenizer_files(folder: str | Path, model_max_length: int = 32) -> Path:
    """Write vocab.json, merges.txt and the tokenizer configs of a toy CLIPTokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    byte_chars = list(_bytes_to_unicode().values())
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars]
    merges = build_merges(TOY_WORDS)
    vocab_list += ["".join(pair) for pair in merges]
    vocab_list += [BOS, EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_list))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    config = {"model_max_length": model_max_length, "bos_token": BOS, "eos_token": EOS, "unk_token": EOS,
              "pad_token": EOS, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}, indent=2))
    return folder
