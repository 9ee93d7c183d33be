"""Public prompt suites by name (`dreamflow prompts fetch`), prompt ids and groups, and how a suite plans
with them: pinned hashes, the cache, Dream Fields' captions read without running their file, ids that
reach GPTEval3D's layout. The public lists are read from ../shared/benchmarks/ when it is there."""

import hashlib
import json
import re

import pytest

from dreamflow.cli import main
from dreamflow.planner import SuitePlan
from dreamflow.prompts import (
    SOURCES,
    PromptFileError,
    PromptSource,
    fetch_prompts,
    read_prompt_entries,
    read_prompts,
    suite_prompts,
)
from dreamflow.prompts.sources import dreamfields_captions, source_bytes

from .conftest import ROOT
from .test_planner import workflow_config
from .test_workflow import make_workdir, planned_jobs, snakemake

BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
COPIES = {"dreamfusion": "threestudio/prompt_library.json", "t3bench-single": "t3bench/prompt_single.txt",
          "t3bench-surr": "t3bench/prompt_surr.txt", "t3bench-multi": "t3bench/prompt_multi.txt",
          "gpteval3d": "gpteval3d/prompts.json"}
needs_copies = pytest.mark.skipif(not BENCHMARKS.is_dir(), reason=f"no copies of the public lists at {BENCHMARKS}")


@needs_copies
@pytest.mark.parametrize("name, count", [("dreamfusion", 415), ("t3bench-single", 100), ("t3bench-surr", 100),
                                         ("t3bench-multi", 100), ("gpteval3d", 110)])
def test_fetch_from_a_copy_writes_every_prompt_with_its_index_as_id(tmp_path, name, count):
    out = tmp_path / f"{name}.txt"
    assert main(["prompts", "fetch", name, "--from", str(BENCHMARKS / COPIES[name]), "--out", str(out)]) == 0
    entries = read_prompt_entries(out)
    assert len(entries) == count and [e.id for e in entries] == [str(i) for i in range(count)]
    source = (BENCHMARKS / COPIES[name]).read_bytes()
    if name == "gpteval3d":  # the id is the index into GPTEval3D's prompts.json
        assert [e.text for e in entries] == json.loads(source)
    if name == "t3bench-single":
        assert entries[32].text == "A tattered old explorer\u2019s map"  # UTF-8 kept, line 33 of the source
    if name == "dreamfusion":  # 3 entries carry leading/trailing whitespace, read as every prompt file reads it
        raw = json.loads(source)["dreamfusion"]
        assert sum(p != p.strip() for p in raw) == 3
        assert [e.text for e in entries] == [" ".join(p.split()) for p in raw]


@needs_copies
def test_a_file_that_is_not_the_pinned_one_is_refused_naming_both_hashes(tmp_path):
    changed = tmp_path / "prompts.json"
    changed.write_bytes((BENCHMARKS / COPIES["gpteval3d"]).read_bytes().replace(b"A torn hat", b"A torn cap"))
    with pytest.raises(PromptFileError) as error:
        fetch_prompts("gpteval3d", tmp_path / "out.txt", changed)
    found = hashlib.sha256(changed.read_bytes()).hexdigest()
    assert str(changed) in str(error.value) and found in str(error.value) and SOURCES["gpteval3d"].sha256 in str(error.value)
    assert not (tmp_path / "out.txt").exists()


def synthetic_source(data: bytes, **changes) -> PromptSource:
    fields = dict(name="mini", title="a test list", repository="o/r", commit="0" * 40, path="p.json", count=2,
                  parse=lambda raw: json.loads(raw), licence="none", sha256=hashlib.sha256(data).hexdigest())
    return PromptSource(**(fields | changes))


def test_a_download_is_checked_cached_and_read_from_the_cache_next_time(tmp_path, monkeypatch):
    """The cache sits under $DREAMFLOW_CACHE/prompts (conftest points it into tmp_path); a damaged entry is fetched again."""
    data = json.dumps(["a red cube", "a blue sphere"]).encode()
    source = synthetic_source(data)
    calls = []
    download = lambda url: calls.append(url) or data  # noqa: E731
    assert source_bytes(source, download=download)[1] == ["a red cube", "a blue sphere"]
    assert source_bytes(source, download=download)[2].startswith(str(tmp_path / "cache" / "prompts" / "mini"))
    assert calls == ["https://raw.githubusercontent.com/o/r/0000000000000000000000000000000000000000/p.json"]
    cached = next((tmp_path / "cache" / "prompts" / "mini").iterdir())
    cached.write_bytes(b"[]")
    source_bytes(source, download=download)
    assert len(calls) == 2 and cached.read_bytes() == data
    with pytest.raises(PromptFileError, match="sha256 .* expected"):
        source_bytes(synthetic_source(data, sha256="0" * 64), download=lambda url: data)


DREAMFIELDS_SHAPE = '''# coding=utf-8
"""Text prompts (a file of the shape of Dream Fields' coco_queries_val.py)."""
import pathlib
pathlib.Path({marker!r}).write_text("executed")  # a side effect that must never run
queries = [
    'A blue bicycle parked by a metal gate.',
    "A street sign says Walk and Don't Walk.",
    'A horned cow  standing in a green grass field. ',
    'APPEARS TO BE SOME OLD SKIS',
]  # 4 queries
queries = [q.lower().strip(' .,') + '.' for q in queries]
'''


def test_dreamfields_captions_are_read_with_ast_and_never_run(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "coco_queries_val.py"
    path.write_text(DREAMFIELDS_SHAPE.format(marker=str(marker)))
    captions = dreamfields_captions(path.read_bytes())
    assert captions == ["a blue bicycle parked by a metal gate.", "a street sign says walk and don't walk.",
                        "a horned cow  standing in a green grass field.", "appears to be some old skis."]
    digest = hashlib.sha256("\n".join(captions).encode()).hexdigest()
    source = SOURCES["coco-dreamfields"]
    mini = PromptSource(**{**source.__dict__, "count": 4, "list_sha256": digest})
    out = tmp_path / "coco.txt"
    _, prompts, _ = source_bytes(mini, path)
    assert prompts == captions and not marker.exists()  # parsed, checked, and the file's statement never ran
    with pytest.raises(PromptFileError, match=f"parsed prompts' sha256 is {digest}, expected {source.list_sha256}"):
        fetch_prompts("coco-dreamfields", out, path)
    assert not marker.exists() and not out.exists()
    path.write_text(DREAMFIELDS_SHAPE.format(marker=str(marker)).replace("q.lower()", "q.upper()"))
    with pytest.raises(PromptFileError, match="does not normalise its captions as Dream Fields does"):
        dreamfields_captions(path.read_bytes())


@pytest.mark.parametrize("content, fragment", [
    ("0\ta red cube\na blue sphere\n", ":2: this prompt has no id but line 1 has one"),
    ("4\ta red cube\n4\ta blue sphere\n", ":2: duplicate id 4 (first on line 1)"),
])
def test_prompt_ids_are_all_or_none_and_unique(tmp_path, content, fragment):
    path = tmp_path / "p.txt"
    path.write_text(content)
    with pytest.raises(PromptFileError, match=re.escape(fragment)):
        read_prompt_entries(path)


def test_ids_come_from_the_file_or_from_the_order(tmp_path):
    with_ids, plain = tmp_path / "ids.txt", tmp_path / "plain.txt"
    with_ids.write_text("# a cut-down suite keeps its ids\n17\t a red  cube\n3\ta blue sphere\n")
    plain.write_text("a red cube\n# comment\na blue sphere\n")
    assert [(e.id, e.text) for e in read_prompt_entries(with_ids)] == [("17", "a red cube"), ("3", "a blue sphere")]
    assert [(e.id, e.text) for e in read_prompt_entries(plain)] == [("0", "a red cube"), ("1", "a blue sphere")]
    assert read_prompts(with_ids) == read_prompts(plain)


def test_a_suite_of_groups_records_each_prompts_group(tmp_path):
    (tmp_path / "a.txt").write_text("a red cube\na blue sphere\n")
    (tmp_path / "b.txt").write_text("an orange cone\n")
    table = suite_prompts({"single": str(tmp_path / "a.txt"), "multi": str(tmp_path / "b.txt")})
    assert [(e.group, e.id, e.text) for e in table.values()] == [
        ("single", "0", "a red cube"), ("single", "1", "a blue sphere"), ("multi", "0", "an orange cone")]
    (tmp_path / "b.txt").write_text("a blue sphere\n")
    with pytest.raises(PromptFileError, match="'a blue sphere' is in group 'single' and in group 'multi'"):
        suite_prompts({"single": str(tmp_path / "a.txt"), "multi": str(tmp_path / "b.txt")})


def test_a_missing_public_suite_file_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(PromptFileError, match=r"`dreamflow prompts fetch gpteval3d --out .*gpteval3d.txt`"):
        suite_prompts(str(tmp_path / "gpteval3d.txt"))
    (tmp_path / "mine.txt").write_text("a red cube\n")
    with pytest.raises(PromptFileError, match=r"`dreamflow prompts fetch t3bench-multi"):
        suite_prompts({"single": str(tmp_path / "mine.txt"), "multi": str(tmp_path / "t3bench-multi.txt")})


def test_layout_folders_are_filed_by_prompt_id(tmp_path):
    (tmp_path / "p.txt").write_text("12\ta red cube\n40\ta blue sphere\n")
    entries = suite_prompts(str(tmp_path / "p.txt"))
    prompts = {slug: e.text for slug, e in entries.items()}
    config = workflow_config(export_views={"layouts": ["gpteval3d"], "resolution": 512})
    plan = SuitePlan(config, {}, prompts, None, entries)
    folders = [t for t in plan.targets() if "/gpteval3d/" in t]
    assert sorted(folders) == sorted(f"results/s/gpteval3d/base/methods/{m}/{i}/0" for m in ("apfo", "sds")
                                     for i in ("12", "40"))
    (tmp_path / "p.txt").write_text("a red cube\n")  # ids from the order: 0 in both groups
    (tmp_path / "q.txt").write_text("an orange cone\n")
    shared_ids = suite_prompts({"a": str(tmp_path / "p.txt"), "b": str(tmp_path / "q.txt")})
    with pytest.raises(ValueError, match=r"groups \['a', 'b'\] share ids"):
        SuitePlan(config, {}, {s: e.text for s, e in shared_ids.items()}, None, shared_ids)


def test_the_workflow_exports_each_asset_under_its_prompt_id(tmp_path):
    """A suite of two groups with ids from their files plans one layout job per asset, each filed under its
    prompt's id and checked against its group's file; evaluation ranks among its group's prompts."""
    workdir = make_workdir(tmp_path)
    (workdir / "mine").mkdir()
    (workdir / "mine" / "single.txt").write_text("5\tan orange cone\n")
    (workdir / "mine" / "multi.txt").write_text("9\ta yellow sphere on a purple cube\n")
    (workdir / "suite.yaml").write_text(
        "suite: ids\nprompts: {single: mine/single.txt, multi: mine/multi.txt}\n"
        "export_views: {layouts: [gpteval3d], resolution: 64}\n")
    result, output = snakemake(workdir, "-n", "-p", "--configfile", "suite.yaml")
    assert result.returncode == 0, output[-3000:]
    assert planned_jobs(output)["export_views"] == 2
    commands = [line for line in output.splitlines() if "dreamflow export-views" in line]
    assert any("--prompts mine/multi.txt --prompt-id 9 " in c and "a-yellow-sphere-on-a-purple-cube" in c
               and "--out results/ids/gpteval3d/base" in c for c in commands), commands
    assert "output: results/ids/gpteval3d/base/methods/apfo/5/0" in output
    assert "--suite-prompts mine/multi.txt" in output and "--suite-prompts mine/single.txt" in output


def test_the_prompts_command_checks_a_file_and_lists_the_sources(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("7\ta red cube\n")
    assert main(["prompts", "check", str(tmp_path / "p.txt")]) == 0
    assert capsys.readouterr().out.startswith("7\ta-red-cube-")
    assert main(["prompts", "sources"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SOURCES) and "153" in listed and "4c4299485319" in listed
    assert main(["prompts", "fetch", "gpteval3d", "--from", str(tmp_path / "none.json"), "--out",
                 str(tmp_path / "g.txt")]) == 2
    assert "--from file" in capsys.readouterr().err and not (tmp_path / "g.txt").exists()
