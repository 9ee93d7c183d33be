# The optimisation stages, one rule each, all from this one definition over the stage table
# (dreamflow.training.stages.STAGES): stage 1 hash-grid NeRF (paper: 256 px, SD 2.1), stage 2 the
# extracted mesh (512 px), stage 3 the mesh refined with the refiner prior (SDXL refiner, 1024 px).
# With `curves.every` set, a stage also scores held-out views every N iterations (curve.csv).

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


for _spec in STAGES.values():

    rule:
        name:
            _spec.name
        input:
            **stage_inputs(_spec.name),
        output:
            **stage_outputs(_spec.name),
        params:
            out=lambda wildcards, output: str(Path(output.ckpt).parent),
            wandb=wandb_args,
            curves=curve_args,
            inputs=stage_input_args(_spec.name),
        conda:
            CONDA_ENV
        log:
            logfile(_spec.name),
        benchmark:
            bench(_spec.name)
        threads: threads_of(_spec.name)
        resources:
            mem_mb=resources_of(_spec.name, "mem_mb"),
            runtime=resources_of(_spec.name, "runtime"),
            gpu=gpus_of(_spec.name),
        # The command is formatted when the job runs, after the loop: it names the stage by {rule}.
        shell:
            "OMP_NUM_THREADS={threads} DREAMFLOW_NO_PROGRESS=1 dreamflow {rule} --config {input.config}"
            " --prompt-file {input.prompt} --method {wildcards.method} --variant {wildcards.variant}"
            " --seed {wildcards.seed} {params.inputs} --out {params.out} {params.curves} {params.wandb} > {log} 2>&1"
