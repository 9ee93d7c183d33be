"""Prompt suites: reading prompt files robustly and turning prompts into unique, safe folder names."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

MAX_PROMPT_CHARS = 2000


class PromptFileError(ValueError):
    """A prompt suite file is empty, unreadable or has duplicate prompts."""


def slugify(prompt: str, max_length: int = 60) -> str:
    """A filesystem-safe, unique folder name: readable ASCII prefix + hash of the exact prompt."""
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:8]
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length].strip("-")
    return f"{readable or 'prompt'}-{digest}"


def read_prompts(path: str | Path) -> list[str]:
    """Prompts of a suite file: one per line, `#` comments and blank lines skipped, BOM/CRLF tolerated.

    Duplicates (after whitespace normalisation) and an empty suite are errors naming the lines.
    """
    path = Path(path)
    if not path.exists():
        raise PromptFileError(f"prompt file '{path}' does not exist")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PromptFileError(f"prompt file '{path}' is not UTF-8 text ({error}); re-save it as UTF-8") from error
    prompts: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        prompt = " ".join(line.strip().split())
        if not prompt or prompt.startswith("#"):
            continue
        if len(prompt) > MAX_PROMPT_CHARS:
            raise PromptFileError(f"{path}:{number}: prompt is {len(prompt)} characters; the limit is "
                                  f"{MAX_PROMPT_CHARS}")
        if prompt in seen:
            raise PromptFileError(f"{path}:{number}: duplicate prompt {prompt!r} (first on line {seen[prompt]}); "
                                  "remove one of them")
        seen[prompt] = number
        prompts.append(prompt)
    if not prompts:
        raise PromptFileError(f"prompt file '{path}' has no prompts (only blank lines or # comments)")
    return prompts


def prompt_table(path: str | Path) -> dict[str, str]:
    """slug -> prompt for a suite file."""
    return {slugify(p): p for p in read_prompts(path)}
