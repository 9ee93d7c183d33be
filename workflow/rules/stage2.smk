# Stage 2: the extracted mesh optimised with the base prior (paper: 512 px, APFO t 0.5 -> 0.1).


rule stage2:
    input:
        config=suite_file("config/stage2.yaml"),
        prompt=suite_file("prompts/{slug}.txt"),
        prior=prior_inputs("stage2"),
        mesh=asset("mesh/coarse.obj"),
        init=asset("stage1/ckpt.pt"),
    output:
        ckpt=asset("stage2/ckpt.pt"),
        mesh=asset("stage2/mesh.glb"),
        preview=report(asset("stage2/preview.png"), category="Stage 2", labels={"method": "{method}", "prompt": "{slug}", "seed": "{seed}"}),
    params:
        out=lambda wildcards, output: str(Path(output.ckpt).parent),
        wandb=wandb_args,
    conda:
        CONDA_ENV
    log:
        logfile("stage2"),
    benchmark:
        bench("stage2")
    threads: threads_of("stage2")
    resources:
        mem_mb=resources_of("stage2", "mem_mb"),
        runtime=resources_of("stage2", "runtime"),
        gpu=gpus_of("stage2"),
    shell:
        "OMP_NUM_THREADS={threads} DREAMFLOW_NO_PROGRESS=1 dreamflow stage2 --config {input.config}"
        " --prompt-file {input.prompt} --method {wildcards.method} --seed {wildcards.seed}"
        " --init {input.init} --mesh {input.mesh} --out {params.out} {params.wandb} > {log} 2>&1"
