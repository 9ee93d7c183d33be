# Stage 3: mesh refined with the refiner prior (paper: SDXL refiner, 1024 px); textured export.


rule stage3:
    input:
        config=suite_file("config/stage3.yaml"),
        prompt=suite_file("prompts/{slug}.txt"),
        prior=prior_inputs("stage3"),
        init=asset("stage2/ckpt.pt"),
    output:
        ckpt=asset("stage3/ckpt.pt"),
        mesh=asset("stage3/mesh.glb"),
        obj=asset("stage3/mesh.obj"),
        preview=report(asset("stage3/preview.png"), category="Stage 3", labels={"method": "{method}", "prompt": "{slug}", "seed": "{seed}"}),
        turntable=report(asset("stage3/turntable.gif"), category="Turntables", labels={"method": "{method}", "prompt": "{slug}", "seed": "{seed}"}),
        views=directory(asset("stage3/views")),
    params:
        out=lambda wildcards, output: str(Path(output.ckpt).parent),
        wandb=wandb_args,
    conda:
        CONDA_ENV
    log:
        logfile("stage3"),
    benchmark:
        bench("stage3")
    threads: threads_of("stage3")
    resources:
        mem_mb=resources_of("stage3", "mem_mb"),
        runtime=resources_of("stage3", "runtime"),
        gpu=gpus_of("stage3"),
    shell:
        "OMP_NUM_THREADS={threads} DREAMFLOW_NO_PROGRESS=1 dreamflow stage3 --config {input.config}"
        " --prompt-file {input.prompt} --method {wildcards.method} --seed {wildcards.seed}"
        " --init {input.init} --out {params.out} {params.wandb} > {log} 2>&1"
