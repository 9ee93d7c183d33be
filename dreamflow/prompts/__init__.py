"""Prompt suites: prompt files with ids (`files`), the public benchmark suites fetched by name (`sources`),
and a suite's prompts read from one file or from a mapping of groups to files (`suite_prompts`)."""

from dreamflow.prompts.files import (
    MAX_PROMPT_CHARS,
    Prompt,
    PromptFileError,
    normalise_prompt,
    prompt_table,
    read_prompt_entries,
    read_prompts,
    slugify,
    write_prompt_file,
)
from dreamflow.prompts.sources import SOURCES, PromptSource, fetch_prompts, require_public_file, suite_prompts

__all__ = ["MAX_PROMPT_CHARS", "Prompt", "PromptFileError", "PromptSource", "SOURCES", "fetch_prompts",
           "normalise_prompt", "prompt_table", "read_prompt_entries", "read_prompts", "require_public_file", "slugify",
           "suite_prompts", "write_prompt_file"]
