# Shared helpers: config validation, the suite's plan (dreamflow/planner.py), output paths and resources.
# Helpers of a single rules file sit in helpers/ under its name. Planning imports no torch (the plan
# reads the stage description, dreamflow/stages.py, and the config package only).
import os
import re
import shlex
from pathlib import Path

import yaml

from snakemake.utils import validate

from dreamflow.config import method_names, read_config_data, to_dict
from dreamflow.planner import TUNING_PICK, SuitePlan
from dreamflow.prompts import prompt_table, require_public_file, suite_prompts
from dreamflow.stages import CURVE, EXTRACTED_FROM, EXTRACTION, FINAL_STAGE, STAGES

validate(config, "../schemas/config.schema.yaml")

SUITE = config["suite"]
RESULTS = config["results_dir"]
STAGE_ORDER = list(STAGES)
# slug -> Prompt (text, id, group) from one prompt file or a mapping group -> file; errors name the bad
# line, and a missing public suite's file names the command that fetches it.
PROMPT_ENTRIES = suite_prompts(config["prompts"])
PROMPTS = {slug: entry.text for slug, entry in PROMPT_ENTRIES.items()}
TUNING = config.get("tuning")
TUNING_PROMPTS = prompt_table(TUNING["prompts"]) if TUNING else {}
ALL_PROMPTS = {**PROMPTS, **TUNING_PROMPTS}
# The run config's data: the inline `pipeline:` block, else the `pipeline_config` file (or its `pipeline:` block).
PIPELINE_DATA = config.get("pipeline") or read_config_data(config["pipeline_config"])
PLAN = SuitePlan(config, PIPELINE_DATA, PROMPTS, TUNING_PROMPTS, PROMPT_ENTRIES)
PIPELINE_OVERRIDES = PLAN.pipeline_overrides
RUN_CONFIG = PLAN.run_config
STEP_BLOCKS = PLAN.step_blocks
VARIANTS, SUITE_VARIANTS, GRID_POINTS, TUNED = PLAN.variants, PLAN.suite_variants, PLAN.grid_points, PLAN.tuned
CONDA_ENV = "../envs/dreamflow.yaml"
CURVES = config["curves"]
REPORTS = config["reports"]


def suite_file(name):
    """results/{suite}/NAME"""
    return PLAN.suite_file(name)


def asset(name):
    """results/{suite}/{method}/{variant}/{slug}/seed{seed}/NAME"""
    return PLAN.asset(name)


def bench(step):
    return os.path.join("benchmarks", "{suite}", "{method}", "{variant}", "{slug}", "seed{seed}", f"{step}.tsv")


def logfile(step):
    return os.path.join("logs", "{suite}", "{method}", "{variant}", "{slug}", "seed{seed}", f"{step}.log")


def variant_overrides(variant):
    return PLAN.variant_overrides(variant)


def made_by(template, values, step):
    """`template` filled for the asset `values` names, in the folder of the variant whose run of `step` it uses."""
    return PLAN.made_by(template, values, step)


def asset_of(wildcards, step, name):
    """Path of `name` written by `step` for the asset of these wildcards."""
    return made_by(asset(name), dict(wildcards.items()), step)


def prompt_file_of(slug):
    """The prompt file (of its group) that holds the prompt `slug`."""
    spec = config["prompts"]
    return spec if isinstance(spec, str) else spec[PROMPT_ENTRIES[slug].group]


wildcard_constraints:
    suite=r"[A-Za-z0-9_.-]+",
    method="|".join(method_names()),
    variant="|".join(re.escape(name) for name in VARIANTS),
    slug=r"[a-z0-9-]+",
    seed=r"\d+",
    prompt_id=r"\d+",


# -- inputs of every step -------------------------------------------------------------------------
def step_config_file(step):
    return suite_file(os.path.join("config", "{variant}", "{method}", f"{step}.yaml"))


def pick_file():
    return suite_file(TUNING_PICK)


def local_files(*names):
    """The names that are local files or folders (model weights a command reads); hub ids and tags are not."""
    return [name for name in names if name and os.path.exists(name)]


def resources_of(rule_name, key, default=None):
    return config["resources"].get(rule_name, {}).get(key, config["resources"]["default"].get(key, default))


def threads_of(rule_name):
    return resources_of(rule_name, "threads", 1)


def gpus_of(rule_name):
    """GPUs a job of `rule_name` requests (SLURM plugin: gpu=N -> sbatch --gpus=N; 0 requests none).

    From `resources.<rule>.gpu` when set; otherwise 1 for the stages when the run config's device
    is CUDA and 0 for everything else, so a CPU suite (the toy suite, device auto) asks for no GPU.
    """
    explicit = config["resources"].get(rule_name, {}).get("gpu", config["resources"]["default"].get("gpu"))
    if explicit is not None:
        return explicit
    return int(rule_name in STAGES and str(RUN_CONFIG["device"]).startswith("cuda"))


# -- targets --------------------------------------------------------------------------------------
def entry_path(entry, name, step=None):
    """Path of `name` for an entry (method, variant, slug, seed) (written by `step` when given, see `made_by`)."""
    return PLAN.entry_path(entry, name, step)


def suite_entries():
    return PLAN.suite_entries()


def curve_files(entry_list, stages=STAGE_ORDER):
    return PLAN.curve_files(entry_list, stages)


def suite_targets():
    """Every asset's final mesh (and metrics, curves) and the reports: a deleted output is re-made."""
    return PLAN.targets()
