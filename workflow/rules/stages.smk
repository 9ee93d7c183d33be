# The optimisation stages, one rule each, all from this one definition over the stage description
# (dreamflow/stages.py): stage 1 hash-grid NeRF (paper: 256 px, SD 2.1), stage 2 the extracted mesh
# (512 px), stage 3 the mesh refined with the refiner prior (SDXL refiner, 1024 px). Every file a
# stage writes is an output here (its `outputs`), besides its log and prompt (`RECORDS`). With
# `curves.every` set, a stage also scores held-out views every N iterations (curve.csv).


include: "helpers/stages.smk"


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
            stage=_spec.name,
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
        # The command is formatted when the job runs, after the loop: the stage comes from params.
        shell:
            "OMP_NUM_THREADS={threads} DREAMFLOW_NO_PROGRESS=1 dreamflow {params.stage} --config {input.config}"
            " --prompt-file {input.prompt} --method {wildcards.method} --variant {wildcards.variant}"
            " --seed {wildcards.seed} {params.inputs} --out {params.out} {params.curves} {params.wandb} > {log} 2>&1"
