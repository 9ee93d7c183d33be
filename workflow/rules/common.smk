# Shared helpers: config validation, the prompt table, output paths and resources.
import yaml
from pathlib import Path

from snakemake.utils import validate

from dreamflow.config import load_config, to_dict
from dreamflow.prompts import prompt_table

validate(config, "../schemas/config.schema.yaml")

SUITE = config["suite"]
RESULTS = config["results_dir"]
PROMPTS = prompt_table(config["prompts"])  # slug -> prompt; errors name the bad line
ASSET = RESULTS + "/{suite}/{method}/{slug}/seed{seed}"
BENCH = "benchmarks/{suite}/{method}/{slug}/seed{seed}"
LOGS = "logs/{suite}/{method}/{slug}/seed{seed}"


wildcard_constraints:
    suite=r"[A-Za-z0-9_.-]+",
    method="apfo|sds|vsd",
    slug=r"[a-z0-9-]+",
    seed=r"\d+",


def pipeline_config():
    """The run config every stage reads: the inline `pipeline:` block, else `pipeline_config` file."""
    data = config.get("pipeline") or yaml.safe_load(Path(config["pipeline_config"]).read_text())
    data = dict(data)
    for key, value in (config.get("pipeline_overrides") or {}).items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return to_dict(load_config(overrides=None) if not data else _validated(data))


def _validated(data):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as stream:
        yaml.safe_dump(data, stream)
    return load_config(stream.name)


RUN_CONFIG = pipeline_config()


def resources_of(rule_name, key, default=None):
    return config["resources"].get(rule_name, {}).get(key, config["resources"]["default"].get(key, default))


def threads_of(rule_name):
    return resources_of(rule_name, "threads", 1)


def wandb_args(wildcards):
    w = config["wandb"]
    args = f"--wandb-mode {w['mode']} --wandb-project {w['project']} --wandb-group {wildcards.suite} "
    args += f"--wandb-dir {RESULTS}/{wildcards.suite} --wandb-tags seed{wildcards.seed}"
    if w.get("entity"):
        args += f" --wandb-entity {w['entity']}"
    return args


def suite_targets():
    return [
        f"{RESULTS}/{SUITE}/summary.csv",
        f"{RESULTS}/{SUITE}/summary.md",
        f"{RESULTS}/{SUITE}/report.html",
    ]


def all_metrics(wildcards):
    return expand(
        ASSET + "/metrics.json",
        suite=wildcards.suite,
        method=config["methods"],
        slug=list(PROMPTS),
        seed=config["seeds"],
    )
