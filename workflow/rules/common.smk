# Shared helpers: config validation, prompts, variants, output paths and resources.
#
# Every asset is (method, variant, prompt, seed); a variant is a named set of run-config overrides
# declared in the suite config. Suites, races, tuning grids, recipe races and seed sweeps are all
# methods x prompts x seeds x variants, plus the report rules their config asks for.
import os
import re
import shlex
from pathlib import Path

import yaml

from snakemake.utils import validate

from dreamflow.config import ConfigError, load_config_data, to_dict
from dreamflow.guidance import available as guidance_methods
from dreamflow.prompts import prompt_table
from dreamflow.training.stages import FINAL_STAGE, SHARED_BLOCKS, STAGES

validate(config, "../schemas/config.schema.yaml")
# The method list belongs to the guidance registry (the schema only checks the type).
_unknown = sorted(set(config["methods"]) - set(guidance_methods()))
if _unknown:
    raise ValueError(f"config 'methods' has unknown guidance method(s) {_unknown}; "
                     f"choose from {list(guidance_methods())}")

SUITE = config["suite"]
RESULTS = config["results_dir"]
STAGE_ORDER = list(STAGES)
PROMPTS = prompt_table(config["prompts"])  # slug -> prompt; errors name the bad line
TUNING = config.get("tuning")
TUNING_PROMPTS = prompt_table(TUNING["prompts"]) if TUNING else {}
_shared = sorted(set(PROMPTS) & set(TUNING_PROMPTS))
if _shared:
    raise ValueError(f"tuning prompts must be held out from the suite's prompts; both hold {_shared}")
ALL_PROMPTS = {**PROMPTS, **TUNING_PROMPTS}
ASSET = os.path.join(RESULTS, "{suite}", "{method}", "{variant}", "{slug}", "seed{seed}")
CONDA_ENV = "../envs/dreamflow.yaml"
CURVES = config["curves"]
REPORTS = config["reports"]


def suite_file(name):
    """results/{suite}/NAME"""
    return os.path.join(RESULTS, "{suite}", name)


def asset(name):
    """results/{suite}/{method}/{variant}/{slug}/seed{seed}/NAME"""
    return os.path.join(ASSET, name)


def bench(step):
    return os.path.join("benchmarks", "{suite}", "{method}", "{variant}", "{slug}", "seed{seed}", f"{step}.tsv")


def logfile(step):
    return os.path.join("logs", "{suite}", "{method}", "{variant}", "{slug}", "seed{seed}", f"{step}.log")


def pipeline_data():
    """The run config's data: the inline `pipeline:` block, else the `pipeline_config` file, with overrides."""
    data = config.get("pipeline")
    if not data:
        data = yaml.safe_load(Path(config["pipeline_config"]).read_text()) or {}
        data = data.get("pipeline", data)  # a workflow config file: its `pipeline:` block
    overrides = config.get("pipeline_overrides") or {}
    return data, overrides


PIPELINE_DATA, PIPELINE_OVERRIDES = pipeline_data()
RUN_CONFIG = to_dict(load_config_data(PIPELINE_DATA, PIPELINE_OVERRIDES))

# Each step reads only the config blocks it uses, so changing e.g. `stage3` re-runs stage 3 and
# evaluation but keeps the cached NeRFs and meshes (blocks left out take their defaults).
STEP_BLOCKS = {
    **{name: [*SHARED_BLOCKS, *spec.config_blocks] for name, spec in STAGES.items()},
    "extract_mesh": ["seed", "device", "nerf", "volume", "extract"],
    "evaluate": list(RUN_CONFIG),
}


# -- variants -------------------------------------------------------------------------------------
def _variant_table():
    """name -> {set, methods, starts_at, from}: the suite's variants, then the tuning grid's points."""
    declared = dict(config["variants"])
    grid = dict(TUNING["grid"]) if TUNING else {}
    clash = sorted(set(declared) & set(grid))
    if clash:
        raise ValueError(f"tuning grid point(s) {clash} have the name of a suite variant; rename one")
    first = next(iter(declared))
    table = {}
    for name, spec in {**declared, **grid}.items():
        spec = dict(spec or {})
        table[name] = {"set": dict(spec.get("set") or {}), "methods": spec.get("methods") or list(config["methods"]),
                       "starts_at": spec.get("starts_at", STAGE_ORDER[0]), "from": spec.get("from", first)}
    return table, list(declared), list(grid)


VARIANTS, SUITE_VARIANTS, GRID_POINTS = _variant_table()
TUNED = TUNING["picks_for"] if TUNING else None


# Mesh extraction belongs to the stage that takes the extracted mesh as input.
MESH_STAGE = next(name for name, spec in STAGES.items() if "mesh" in spec.inputs)


def step_of(name):
    """Position of a step in the stage order (extraction counts with the stage it feeds)."""
    return STAGE_ORDER.index(MESH_STAGE if name == "extract_mesh" else name)


def variant_overrides(variant):
    return {**PIPELINE_OVERRIDES, **VARIANTS[variant]["set"]}


def _check_variants():
    """Every variant builds a valid run config; one that starts late changes no earlier step."""
    for name, spec in VARIANTS.items():
        unknown = sorted(set(spec["methods"]) - set(config["methods"]))
        if unknown:
            raise ValueError(f"variant {name!r} lists method(s) {unknown} that are not in the suite's methods")
        if "seed" in spec["set"] or "guidance.method" in spec["set"]:
            raise ValueError(f"variant {name!r} sets 'seed' or 'guidance.method': those are the suite's "
                             "`seeds` and `methods` (a variant may restrict `methods` instead)")
        try:
            resolved = to_dict(load_config_data(PIPELINE_DATA, variant_overrides(name)))
        except ConfigError as error:
            raise ValueError(f"variant {name!r}: {error}") from None
        if spec["starts_at"] not in STAGES:
            raise ValueError(f"variant {name!r} starts_at {spec['starts_at']!r}; choose one of {STAGE_ORDER}")
        if spec["starts_at"] == STAGE_ORDER[0]:
            continue
        if spec["from"] not in VARIANTS or spec["from"] == name:
            raise ValueError(f"variant {name!r} reuses earlier stages from {spec['from']!r}, which is not another variant")
        earlier = [step for step in [*STAGE_ORDER, "extract_mesh"]
                   if step_of(step) < STAGE_ORDER.index(spec["starts_at"])]
        source = to_dict(load_config_data(PIPELINE_DATA, variant_overrides(spec["from"])))
        for step in earlier:
            if any(resolved[b] != source[b] for b in STEP_BLOCKS[step]):
                raise ValueError(f"variant {name!r} starts at {spec['starts_at']} but its overrides change {step}, "
                                 f"which it reuses from {spec['from']!r}: start it at that step instead")
    if TUNING:
        if TUNED not in SUITE_VARIANTS:
            raise ValueError(f"tuning.picks_for is {TUNED!r}; it must name one of the suite's variants {SUITE_VARIANTS}")
        if TUNING["stage"] not in STAGES:
            raise ValueError(f"tuning.stage is {TUNING['stage']!r}; choose one of {STAGE_ORDER}")
        if not CURVES["every"]:
            raise ValueError("a tuning grid is scored from quality curves: set curves.every (e.g. 25)")


_check_variants()


def source_variant(variant, step):
    """The variant whose files hold `step` for `variant`: itself from its first stage on, else the one it reuses."""
    spec = VARIANTS[variant]
    if step_of(step) >= STAGE_ORDER.index(spec["starts_at"]):
        return variant
    return source_variant(spec["from"], step)


def made_by(template, values, step):
    """`template` (a path with wildcards) filled for the asset `values` names, in the folder of the
    variant whose run of `step` it uses (the reused variant's, when the asset's starts later)."""
    return template.format(**{**values, "variant": source_variant(values["variant"], step)})


def asset_of(wildcards, step, name):
    """Path of `name` written by `step` for the asset of these wildcards."""
    return made_by(asset(name), dict(wildcards.items()), step)


wildcard_constraints:
    suite=r"[A-Za-z0-9_.-]+",
    method="|".join(guidance_methods()),
    variant="|".join(re.escape(name) for name in VARIANTS),
    slug=r"[a-z0-9-]+",
    seed=r"\d+",


# -- inputs of every step -------------------------------------------------------------------------
def step_config_file(step):
    return suite_file(os.path.join("config", "{variant}", "{method}", f"{step}.yaml"))


def pick_file():
    return suite_file("tuning/pick.yaml")


def local_files(*names):
    """The names that are local files or folders (model weights a command reads); hub ids and tags are not."""
    return [name for name in names if name and os.path.exists(name)]


def prior_inputs(stage):
    """The local model folder a stage loads its prior from (declared so a retrained prior re-runs it)."""
    return local_files(RUN_CONFIG[STAGES[stage].prior_block]["pretrained"])


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
    args += f"--wandb-dir {os.path.join(RESULTS, wildcards.suite)} --wandb-tags seed{wildcards.seed} {wildcards.variant}"
    if w.get("entity"):
        args += f" --wandb-entity {w['entity']}"
    return args


def curve_args(wildcards):
    if not CURVES["every"]:
        return ""
    args = f"--curve-every {CURVES['every']} --curve-views {CURVES['views']}"
    if CURVES.get("clip_model"):
        args += f" --curve-clip-model {CURVES['clip_model']} --curve-clip-pretrained {CURVES['clip_pretrained']}"
    return args


# -- targets --------------------------------------------------------------------------------------
def entries(variants, prompts, seeds):
    """(method, variant, slug, seed) of every asset of `variants` (each variant's own methods)."""
    return [(method, variant, slug, seed) for variant in variants for method in VARIANTS[variant]["methods"]
            for slug in prompts for seed in seeds]


def entry_path(entry, name, step=None):
    """Path of `name` for an entry of `entries` (written by `step` when given, see `made_by`)."""
    method, variant, slug, seed = entry
    values = {"suite": SUITE, "method": method, "variant": variant, "slug": slug, "seed": seed}
    return made_by(asset(name), values, step) if step is not None else asset(name).format(**values)


def suite_entries():
    return entries(SUITE_VARIANTS, PROMPTS, config["seeds"])


def grid_entries():
    return entries(GRID_POINTS, TUNING_PROMPTS, TUNING["seeds"]) if TUNING else []


def curve_files(entry_list, stages=STAGE_ORDER):
    return [entry_path(e, f"{stage}/curve.csv", stage) for e in entry_list for stage in stages]


def suite_targets():
    """Every asset's final mesh (and metrics, curves) and the reports: a deleted output is re-made."""
    targets = [entry_path(e, f"{FINAL_STAGE}/mesh.glb") for e in suite_entries()]
    if "summary" in REPORTS:
        targets += [entry_path(e, "metrics.json") for e in suite_entries()]
        targets += [os.path.join(RESULTS, SUITE, name) for name in ("summary.csv", "summary.md", "report.html")]
        if has_preference_study():
            targets += [os.path.join(RESULTS, SUITE, name) for name in ("study/index.html", "preference_judge.md")]
    if CURVES["every"]:
        targets += curve_files(suite_entries())
    if "race" in REPORTS:
        targets.append(os.path.join(RESULTS, SUITE, "race", "benchmarks.md"))
    if "recipe" in REPORTS:
        targets.append(os.path.join(RESULTS, SUITE, "recipe", "recipe_race.md"))
    if TUNING:
        targets.append(os.path.join(RESULTS, SUITE, "tuning", "pick.yaml"))
    return targets


def has_preference_study():
    """A suite with the study's reference method and at least one other gets the preference study."""
    methods = config["methods"]
    return config["preference"]["reference"] in methods and len(methods) >= 2


def all_metrics(wildcards):
    return [entry_path(e, "metrics.json") for e in suite_entries()]


def study_metrics(wildcards):
    """The preference study compares methods at the suite's first variant (the one every method runs)."""
    return [entry_path(e, "metrics.json") for e in entries(SUITE_VARIANTS[:1], PROMPTS, config["seeds"])]


def write_partial_summary():
    """After a failed run: the suite summary with every asset, failed or missing ones marked, none dropped."""
    if "summary" not in REPORTS:
        return
    from dreamflow.evaluate.report import summarize_suite

    paths, labels = [], []
    for entry in suite_entries():
        method, variant, slug, seed = entry
        paths.append(entry_path(entry, "metrics.json"))
        labels.append({"method": method, "variant": variant, "seed": seed, "prompt": PROMPTS[slug]})
    out_dir = os.path.join(RESULTS, SUITE)
    try:
        summarize_suite(paths, out_dir, SUITE, labels)
        print(f"Some jobs failed: {out_dir}/summary.md lists every asset with its status (failed ones marked).")
    except Exception as error:  # a report problem must not hide the jobs' own errors
        print(f"Could not write the partial suite summary: {type(error).__name__}: {error}")


# -- stage rules (stages.smk) ---------------------------------------------------------------------
# Files each stage writes besides ckpt.pt (the exporters in dreamflow/export/assets.py).
STAGE_FILES = {
    "stage1": {"preview": "preview.png", "turntable": "turntable.gif"},
    "stage2": {"mesh": "mesh.glb", "preview": "preview.png"},
    "stage3": {"mesh": "mesh.glb", "obj": "mesh.obj", "preview": "preview.png", "turntable": "turntable.gif",
               "views": "views"},
}


def stage_outputs(name):
    outputs = {"ckpt": asset(f"{name}/ckpt.pt")}
    for key, file in STAGE_FILES[name].items():
        path = asset(f"{name}/{file}")
        if key == "views":
            path = directory(path)
        elif key in ("preview", "turntable"):
            labels = {"method": "{method}", "variant": "{variant}", "prompt": "{slug}", "seed": "{seed}"}
            path = report(path, category="Turntables" if key == "turntable" else name.replace("stage", "Stage "),
                          labels=labels)
        outputs[key] = path
    if CURVES["every"]:
        outputs["curve"] = asset(f"{name}/curve.csv")
    return outputs


def stage_inputs(name):
    spec = STAGES[name]
    inputs = {"config": step_config_file(name), "prompt": suite_file("prompts/{slug}.txt"),
              "prior": prior_inputs(name)}
    if spec.previous:
        inputs["init"] = lambda wildcards, previous=spec.previous: asset_of(wildcards, previous, f"{previous}/ckpt.pt")
    if "mesh" in spec.inputs:
        inputs["mesh"] = lambda wildcards: asset_of(wildcards, "extract_mesh", "mesh/coarse.obj")
    return inputs


def stage_input_args(name):
    """The stage command's input flags (--init, --mesh) from the rule's inputs."""
    fields = STAGES[name].inputs
    return lambda wildcards, input: " ".join(f"--{field} {input[field]}" for field in fields)


# -- evaluation (evaluate.smk) --------------------------------------------------------------------
def evaluate_inputs():
    inputs = {name: (lambda wildcards, name=name: asset_of(wildcards, name, f"{name}/ckpt.pt")) for name in STAGES}
    inputs["mesh"] = lambda wildcards: asset_of(wildcards, "extract_mesh", "mesh/coarse.obj")
    # Snakemake's benchmark records of the steps that made the asset: its timings.
    inputs["benchmarks"] = lambda wildcards: [made_by(bench(step), dict(wildcards.items()), step)
                                              for step in [*STAGES, "extract_mesh"]]
    return inputs


# -- comparisons (compare.smk) --------------------------------------------------------------------
def regenerate_command():
    """How a reader regenerates a report: this workflow with the suite's config file."""
    files = getattr(workflow, "overwrite_configfiles", None) or []
    return "snakemake --cores all" + "".join(f" --configfile {os.path.relpath(f)}" for f in files)


def race_curve_files():
    variants = config["race"].get("variants") or SUITE_VARIANTS
    return curve_files(entries(variants, PROMPTS, config["seeds"]))
