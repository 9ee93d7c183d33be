# Shared helpers: config validation, the prompt table, output paths and resources.
import os
from pathlib import Path

import yaml

from snakemake.utils import validate

from dreamflow.config import load_config_data, to_dict
from dreamflow.guidance import available as guidance_methods
from dreamflow.prompts import prompt_table
from dreamflow.training.stages import SHARED_BLOCKS, STAGES

validate(config, "../schemas/config.schema.yaml")
# The method list belongs to the guidance registry (the schema only checks the type).
_unknown = sorted(set(config["methods"]) - set(guidance_methods()))
if _unknown:
    raise ValueError(f"config 'methods' has unknown guidance method(s) {_unknown}; "
                     f"choose from {list(guidance_methods())}")

SUITE = config["suite"]
RESULTS = config["results_dir"]
PROMPTS = prompt_table(config["prompts"])  # slug -> prompt; errors name the bad line
ASSET = os.path.join(RESULTS, "{suite}", "{method}", "{slug}", "seed{seed}")
CONDA_ENV = "../envs/dreamflow.yaml"


def suite_file(name):
    """results/{suite}/NAME"""
    return os.path.join(RESULTS, "{suite}", name)


def asset(name):
    """results/{suite}/{method}/{slug}/seed{seed}/NAME"""
    return os.path.join(ASSET, name)


def bench(step):
    return os.path.join("benchmarks", "{suite}", "{method}", "{slug}", "seed{seed}", f"{step}.tsv")


def logfile(step):
    return os.path.join("logs", "{suite}", "{method}", "{slug}", "seed{seed}", f"{step}.log")


wildcard_constraints:
    suite=r"[A-Za-z0-9_.-]+",
    method="|".join(guidance_methods()),
    slug=r"[a-z0-9-]+",
    seed=r"\d+",


def pipeline_config():
    """The run config every stage reads: the inline `pipeline:` block, else `pipeline_config` file."""
    data = config.get("pipeline") or yaml.safe_load(Path(config["pipeline_config"]).read_text())
    return to_dict(load_config_data(data, config.get("pipeline_overrides")))


RUN_CONFIG = pipeline_config()

# Each step reads only the config blocks it uses, so changing e.g. `stage3` re-runs stage 3 and
# evaluation but keeps the cached NeRFs and meshes (blocks left out take their defaults).
STEP_BLOCKS = {
    **{name: [*SHARED_BLOCKS, *spec.config_blocks] for name, spec in STAGES.items()},
    "extract_mesh": ["seed", "device", "nerf", "volume", "extract"],
    "evaluate": list(RUN_CONFIG),
}


def local_files(*names):
    """The names that are local files or folders (model weights a command reads); hub ids and tags are not."""
    return [name for name in names if name and os.path.exists(name)]


def prior_inputs(stage):
    """The local model folder a stage loads its prior from (declared so a retrained prior re-runs it)."""
    return local_files(RUN_CONFIG[STAGES[stage].prior_block]["pretrained"])


def step_config(step):
    return {key: RUN_CONFIG[key] for key in STEP_BLOCKS[step]}


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


def wandb_args(wildcards):
    w = config["wandb"]
    args = f"--wandb-mode {w['mode']} --wandb-project {w['project']} --wandb-group {wildcards.suite} "
    args += f"--wandb-dir {os.path.join(RESULTS, wildcards.suite)} --wandb-tags seed{wildcards.seed}"
    if w.get("entity"):
        args += f" --wandb-entity {w['entity']}"
    return args


def suite_targets():
    """Every asset's final mesh and metrics, and the suite report: a deleted output is re-made."""
    assets = expand(
        asset("{name}"),
        suite=SUITE,
        method=config["methods"],
        slug=list(PROMPTS),
        seed=config["seeds"],
        name=["stage3/mesh.glb", "metrics.json"],
    )
    names = ["summary.csv", "summary.md", "report.html"]
    if has_preference_study():
        names += ["study/index.html", "preference_judge.md"]
    return assets + [os.path.join(RESULTS, SUITE, name) for name in names]


def has_preference_study():
    """A suite with the study's reference method and at least one other gets the preference study."""
    methods = config["methods"]
    return config["preference"]["reference"] in methods and len(methods) >= 2


def all_metrics(wildcards):
    return expand(
        asset("metrics.json"),
        suite=wildcards.suite,
        method=config["methods"],
        slug=list(PROMPTS),
        seed=config["seeds"],
    )


def write_partial_summary():
    """After a failed run: the suite summary with every asset, failed or missing ones marked, none dropped."""
    from dreamflow.evaluate.report import summarize_suite

    paths, labels = [], []
    for method in config["methods"]:
        for slug, prompt in PROMPTS.items():
            for seed in config["seeds"]:
                paths.append(asset("metrics.json").format(suite=SUITE, method=method, slug=slug, seed=seed))
                labels.append({"method": method, "seed": seed, "prompt": prompt})
    out_dir = os.path.join(RESULTS, SUITE)
    try:
        summarize_suite(paths, out_dir, SUITE, labels)
        print(f"Some jobs failed: {out_dir}/summary.md lists every asset with its status (failed ones marked).")
    except Exception as error:  # a report problem must not hide the jobs' own errors
        print(f"Could not write the partial suite summary: {type(error).__name__}: {error}")
