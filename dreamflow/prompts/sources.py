"""The public benchmark prompt suites by name (`dreamflow prompts fetch NAME`), and a suite config's prompts.

Each suite is one file of a public repository at a pinned commit, downloaded from its raw URL, checked by
sha256 and cached (under $DREAMFLOW_CACHE/prompts, as the text-embedding cache, default ~/.cache/dreamflow),
then written as a prompt file of `ID<TAB>prompt` lines, the id being the prompt's 0-based index in the
source list. `--from FILE` reads the same file offline and checks it the same way. The lists are not part
of the project.

Dream Fields' captions are Python source: the list `queries` is read with `ast` (the file is never executed
or imported) and normalised as Dream Fields' own next statement does, `q.lower().strip(' .,') + '.'`. Its
header changes with the copyright year, so the check is on the parsed list, not the file's bytes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from dreamflow.prompts.files import Prompt, PromptFileError, normalise_prompt, read_prompt_entries, write_prompt_file

DOWNLOAD_TIMEOUT_S = 60
# Dream Fields' own normalisation of its captions, the statement after the list (as `ast.unparse` writes it).
DREAMFIELDS_NORMALISATION = "queries = [q.lower().strip(' .,') + '.' for q in queries]"


def _json_list(data: bytes, key: str | None = None) -> list[str]:
    value = json.loads(data.decode("utf-8"))
    return value[key] if key is not None else value


def _text_lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8").splitlines() if line.strip()]


def python_string_list(data: bytes, name: str = "queries") -> list[str]:
    """The list of string literals first assigned to `name` in Python source, read with `ast` (never run)."""
    tree = ast.parse(data.decode("utf-8"))
    assignments = [node for node in tree.body if isinstance(node, ast.Assign)
                   and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)]
    if not assignments or not isinstance(assignments[0].value, ast.List):
        raise PromptFileError(f"no list literal assigned to `{name}` at the top level of the file")
    items = assignments[0].value.elts
    if not all(isinstance(item, ast.Constant) and isinstance(item.value, str) for item in items):
        raise PromptFileError(f"`{name}` holds something other than string literals")
    return [item.value for item in items]


def dreamfields_captions(data: bytes) -> list[str]:
    """Dream Fields' COCO captions, normalised by the file's own rule, which must be the one we apply."""
    tree = ast.parse(data.decode("utf-8"))
    statements = [ast.unparse(node) for node in tree.body if isinstance(node, ast.Assign)]
    if DREAMFIELDS_NORMALISATION not in statements:
        raise PromptFileError("the file does not normalise its captions as Dream Fields does "
                              f"({DREAMFIELDS_NORMALISATION!r}); its format changed: check the pinned commit")
    return [caption.lower().strip(" .,") + "." for caption in python_string_list(data, "queries")]


@dataclass(frozen=True)
class PromptSource:
    """A public prompt list: where it lies (repository, commit, path), how to read it, and its pins."""

    name: str
    title: str
    repository: str  # owner/name on GitHub
    commit: str
    path: str
    count: int
    parse: Callable[[bytes], list[str]]
    licence: str
    sha256: str | None = None  # of the file's bytes
    list_sha256: str | None = None  # of the parsed prompts joined by "\n" (when the bytes are not pinned)

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{self.path}"

    def check(self, data: bytes, origin: str) -> list[str]:
        """The parsed prompts of `data`, after its hash and its count are checked; errors name `origin`."""
        if self.sha256 is not None:
            found = hashlib.sha256(data).hexdigest()
            if found != self.sha256:
                raise PromptFileError(f"{origin} is not {self.name}'s pinned file ({self.repository}@"
                                      f"{self.commit[:7]}:{self.path}): sha256 {found}, expected {self.sha256}")
        try:
            prompts = self.parse(data)
        except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise PromptFileError(f"{origin} cannot be read as {self.name}'s {self.path}: "
                                  f"{type(error).__name__}: {error}") from error
        if self.list_sha256 is not None:
            found = hashlib.sha256("\n".join(prompts).encode("utf-8")).hexdigest()
            if found != self.list_sha256:
                raise PromptFileError(f"{origin} does not hold {self.name}'s pinned list ({self.repository}@"
                                      f"{self.commit[:7]}:{self.path}): its parsed prompts' sha256 is {found}, "
                                      f"expected {self.list_sha256}")
        unique = {normalise_prompt(p) for p in prompts}
        if len(prompts) != self.count or len(unique) != self.count:
            raise PromptFileError(f"{origin} holds {len(prompts)} prompts ({len(unique)} unique); {self.name} has "
                                  f"{self.count}")
        return prompts


def _t3bench(group: str, title: str, sha256: str) -> PromptSource:
    return PromptSource(f"t3bench-{group}", f"T3Bench, {title} (100 prompts)", "THU-LYJ-Lab/T3Bench",
                        "6367462cfd04467af772c168c5cd8570964b9df3", f"data/prompt_{group}.txt", 100, _text_lines,
                        "unstated (the repository has no licence file)", sha256=sha256)


SOURCES: dict[str, PromptSource] = {source.name: source for source in (
    PromptSource("dreamfusion", "DreamFusion's gallery prompts as threestudio ships them",
                 "threestudio-project/threestudio",
                 "28d9d80d9d00f308244adfcf3be8b17ca0cb6465", "load/prompt_library.json", 415,
                 lambda data: _json_list(data, "dreamfusion"), "Apache-2.0",
                 sha256="ba7d448824f84ee395ea9903871315ad1d366864c96defd199e516aeb53b0779"),
    _t3bench("single", "single objects", "f396c0c12278340858e85c95258ecb6d39eca966ee34cab569a8ae56a414a6f6"),
    _t3bench("surr", "single objects with surroundings",
             "2af27b4fbc59bfd3f36b2dca19fab60ad68f37b88b28e57746b91314c00d0926"),
    _t3bench("multi", "multiple objects", "712af8080c29b425ee3d992976e77ca21ac60979ec160e2ba0b662aa503e2173"),
    PromptSource("gpteval3d", "GPTEval3D's tournament-v0 prompts (the id is the index in prompts.json)",
                 "3DTopia/GPTEval3D", "2382bdd4b46adc5b86a8e80081d51ae0c37fa58c", "data/tournament-v0/prompts.json",
                 110, _json_list, "unclear (no licence file on main)",
                 sha256="610b885d8e3d3a7e0ce3223e00be3f5a9a44dc0d27098eaf5d981715dfca8eab"),
    PromptSource("coco-dreamfields", "Dream Fields' 153 object-centric COCO captions (DreamFusion's R-precision set)",
                 "google-research/google-research", "4c4299485319ed72ef782020c81784be5468924e",
                 "dreamfields/dreamfields/config/coco_queries_val.py", 153, dreamfields_captions, "Apache-2.0",
                 list_sha256="f0fb740e8dded740d1b8a54ba09c81080499c99e6db11a3a3133c0e3842d9747"),
)}


def cache_dir() -> Path:
    """$DREAMFLOW_CACHE/prompts (default ~/.cache/dreamflow/prompts), the root the text-embedding cache uses."""
    return Path(os.environ.get("DREAMFLOW_CACHE", Path.home() / ".cache" / "dreamflow")) / "prompts"


def _download(url: str) -> bytes:
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 - a pinned https URL
            return response.read()
    except (URLError, OSError) as error:
        raise PromptFileError(f"could not download {url} ({error}); without internet here, download it on another "
                              "machine and pass it with --from FILE") from error


def source_bytes(source: PromptSource, from_file: str | Path | None = None,
                 download: Callable[[str], bytes] = _download) -> tuple[bytes, list[str], str]:
    """(bytes, prompts, origin) of a suite: from `from_file`, else the cache, else downloaded and cached."""
    if from_file is not None:
        path = Path(from_file)
        if not path.is_file():
            raise PromptFileError(f"--from file '{path}' does not exist")
        data = path.read_bytes()
        return data, source.check(data, str(path)), str(path)
    cached = cache_dir() / source.name / f"{source.commit[:12]}-{Path(source.path).name}"
    if cached.is_file():
        data = cached.read_bytes()
        try:
            return data, source.check(data, str(cached)), str(cached)
        except PromptFileError:
            pass  # a damaged or stale cache entry: fetched again below, and replaced
    data = download(source.url)
    prompts = source.check(data, source.url)
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(cached)
    return data, prompts, source.url


def fetch_prompts(name: str, out: str | Path | None = None, from_file: str | Path | None = None,
                  download: Callable[[str], bytes] = _download) -> dict:
    """Write suite `name` as a prompt file (default prompts/NAME.txt); returns what was written."""
    if name not in SOURCES:
        raise PromptFileError(f"unknown prompt suite {name!r}; choose one of {sorted(SOURCES)}")
    source = SOURCES[name]
    data, prompts, origin = source_bytes(source, from_file, download)
    out = Path(out) if out is not None else Path("prompts") / f"{name}.txt"
    pin = f"sha256 {source.sha256}" if source.sha256 else f"parsed list sha256 {source.list_sha256}"
    header = [f"{name}: {source.title}",
              f"source: {source.url}",
              f"checked: {pin}; licence: {source.licence}",
              "written by `dreamflow prompts fetch`; a line is ID<TAB>prompt, ID = 0-based index in the source list"]
    write_prompt_file(out, list(enumerate(prompts)), header)
    normalised = sum(normalise_prompt(p) != p for p in prompts)
    return {"name": name, "prompts": len(prompts), "whitespace_normalised": normalised, "out": str(out),
            "origin": origin, "sha256": hashlib.sha256(data).hexdigest()}


def require_public_file(path: str | Path) -> None:
    """A missing file named like a public suite (prompts/gpteval3d.txt): an error saying how to fetch it."""
    stem = Path(path).stem
    if not Path(path).exists() and stem in SOURCES:
        raise PromptFileError(f"prompt file '{path}' does not exist: fetch it with `dreamflow prompts fetch "
                              f"{stem} --out {path}` (offline: add --from FILE, a copy of {SOURCES[stem].url})")


def suite_prompts(spec: str | Mapping[str, str]) -> dict[str, Prompt]:
    """slug -> Prompt of a suite config's `prompts`: one file, or a mapping group -> file (e.g. T3Bench's three).

    A missing file named like a public suite (prompts/gpteval3d.txt) says how to fetch it; a prompt in two
    groups is an error naming both.
    """
    files = {"": spec} if isinstance(spec, str) else dict(spec)
    table: dict[str, Prompt] = {}
    for group, path in files.items():
        require_public_file(path)
        for prompt in read_prompt_entries(path, group):
            if prompt.slug in table:
                raise PromptFileError(f"prompt {prompt.text!r} is in group {table[prompt.slug].group!r} and in group "
                                      f"{group!r} ({path}); a prompt belongs to one group")
            table[prompt.slug] = prompt
    return table
