"""Prompt files: one prompt a line, each with an id, read robustly; prompts turned into unique, safe folder names.

A line is `PROMPT` or `ID<TAB>PROMPT`, where ID is a non-negative integer: the prompt's index in the public list it
comes from (`dreamflow prompts fetch` writes this form, so a file cut down to a few prompts keeps their ids). A file
gives every prompt an id or none; without ids, a prompt's id is its 0-based position among the file's prompts.
`#` comments and blank lines are skipped; a prompt's whitespace runs read as one space.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_PROMPT_CHARS = 2000
ID_LINE = re.compile(r"^\s*(\d+)\t(.*)$")


class PromptFileError(ValueError):
    """A prompt suite file is empty, unreadable, has duplicate prompts or ids, or cannot be fetched."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of a suite: its exact text, its id in its file, and the suite's group it belongs to."""

    text: str
    id: str
    group: str = ""  # the key of a suite's `prompts:` mapping; "" for a suite of one prompt file

    @property
    def slug(self) -> str:
        return slugify(self.text)


def slugify(prompt: str, max_length: int = 60) -> str:
    """A filesystem-safe, unique folder name: readable ASCII prefix + hash of the exact prompt."""
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:8]
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length].strip("-")
    return f"{readable or 'prompt'}-{digest}"


def normalise_prompt(text: str) -> str:
    """The prompt as the project reads it: surrounding whitespace dropped, inner runs read as one space."""
    return " ".join(text.split())


def read_prompt_entries(path: str | Path, group: str = "") -> list[Prompt]:
    """Prompts of a suite file with their ids (see the module's docstring); BOM and CRLF tolerated.

    Duplicate prompts (after whitespace normalisation) or ids, a file that gives ids to some prompts only,
    and an empty file are errors naming the lines.
    """
    path = Path(path)
    if not path.exists():
        raise PromptFileError(f"prompt file '{path}' does not exist")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PromptFileError(f"prompt file '{path}' is not UTF-8 text ({error}); re-save it as UTF-8") from error
    lines: list[tuple[int, str | None, str]] = []  # (line number, id or None, prompt)
    for number, line in enumerate(text.splitlines(), start=1):
        match = ID_LINE.match(line)
        prompt_id, raw = (str(int(match.group(1))), match.group(2)) if match else (None, line)
        prompt = normalise_prompt(raw)
        if not prompt or (prompt.startswith("#") and prompt_id is None):
            continue
        if len(prompt) > MAX_PROMPT_CHARS:
            raise PromptFileError(f"{path}:{number}: prompt is {len(prompt)} characters; the limit is "
                                  f"{MAX_PROMPT_CHARS}")
        lines.append((number, prompt_id, prompt))
    if not lines:
        raise PromptFileError(f"prompt file '{path}' has no prompts (only blank lines or # comments)")
    with_id = [number for number, prompt_id, _ in lines if prompt_id is not None]
    if with_id and len(with_id) < len(lines):
        without = next(number for number, prompt_id, _ in lines if prompt_id is None)
        raise PromptFileError(f"{path}:{without}: this prompt has no id but line {with_id[0]} has one "
                              "(`ID<TAB>prompt`): give every prompt an id or none")
    prompts: list[Prompt] = []
    seen_text: dict[str, int] = {}
    seen_id: dict[str, int] = {}
    for position, (number, prompt_id, prompt) in enumerate(lines):
        prompt_id = prompt_id if prompt_id is not None else str(position)
        if prompt in seen_text:
            raise PromptFileError(f"{path}:{number}: duplicate prompt {prompt!r} (first on line {seen_text[prompt]}); "
                                  "remove one of them")
        if prompt_id in seen_id:
            raise PromptFileError(f"{path}:{number}: duplicate id {prompt_id} (first on line {seen_id[prompt_id]}); "
                                  "ids must be unique")
        seen_text[prompt], seen_id[prompt_id] = number, number
        prompts.append(Prompt(prompt, prompt_id, group))
    return prompts


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a suite file, in order (see `read_prompt_entries`)."""
    return [prompt.text for prompt in read_prompt_entries(path)]


def prompt_table(path: str | Path) -> dict[str, str]:
    """slug -> prompt for a suite file."""
    return {prompt.slug: prompt.text for prompt in read_prompt_entries(path)}


def write_prompt_file(path: str | Path, prompts: list[tuple[int, str]], header: list[str]) -> Path:
    """A prompt file of `ID<TAB>prompt` lines under `#` header lines (written whole, then renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" for line in header] + [f"{prompt_id}\t{normalise_prompt(text)}" for prompt_id, text in prompts]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path
