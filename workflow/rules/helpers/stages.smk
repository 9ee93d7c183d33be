# Helpers of the stage rules (workflow/rules/stages.smk): each stage's inputs, outputs and flags from the
# stage description (dreamflow/stages.py).


def prior_inputs(stage):
    """The local model folder a stage loads its prior from (declared so a retrained prior re-runs it)."""
    return local_files(RUN_CONFIG[STAGES[stage].prior_block]["pretrained"])


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


def stage_outputs(name):
    """The stage's files (its description's `outputs`); previews and turntables go into Snakemake's report."""
    stage = STAGES[name]
    outputs = {}
    for key in stage.outputs:
        path = asset(stage.path(key))
        if path.endswith("/"):
            path = directory(path.rstrip("/"))
        elif key in ("preview", "turntable"):
            labels = {"method": "{method}", "variant": "{variant}", "prompt": "{slug}", "seed": "{seed}"}
            path = report(path, category="Turntables" if key == "turntable" else stage.label.capitalize(),
                          labels=labels)
        outputs[key] = path
    if CURVES["every"]:
        outputs["curve"] = asset(f"{stage.folder}/{CURVE}")
    return outputs


def stage_inputs(name):
    stage = STAGES[name]
    inputs = {"config": step_config_file(name), "prompt": suite_file("prompts/{slug}.txt"),
              "prior": prior_inputs(name)}
    if stage.previous:
        previous = STAGES[stage.previous]
        inputs["init"] = lambda wildcards, previous=previous: asset_of(wildcards, previous.name, previous.path("ckpt"))
    if "mesh" in stage.inputs:
        inputs["mesh"] = lambda wildcards: asset_of(wildcards, EXTRACTION.name, EXTRACTION.path("mesh"))
    return inputs


def stage_input_args(name):
    """The stage command's input flags (--init, --mesh) from the rule's inputs."""
    fields = STAGES[name].inputs
    return lambda wildcards, input: " ".join(f"--{field} {input[field]}" for field in fields)
