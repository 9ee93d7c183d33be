# Stage 1: hash-grid NeRF optimised with the base prior (paper: 256 px, SD 2.1).


rule stage1:
    input:
        config=suite_file("config/stage1.yaml"),
        prompt=suite_file("prompts/{slug}.txt"),
        prior=prior_inputs("stage1"),
    output:
        ckpt=asset("stage1/ckpt.pt"),
        preview=report(asset("stage1/preview.png"), category="Stage 1", labels={"method": "{method}", "prompt": "{slug}", "seed": "{seed}"}),
        turntable=asset("stage1/turntable.gif"),
    params:
        out=lambda wildcards, output: str(Path(output.ckpt).parent),
        wandb=wandb_args,
    conda:
        CONDA_ENV
    log:
        logfile("stage1"),
    benchmark:
        bench("stage1")
    threads: threads_of("stage1")
    resources:
        mem_mb=resources_of("stage1", "mem_mb"),
        runtime=resources_of("stage1", "runtime"),
        gpu=gpus_of("stage1"),
    shell:
        "OMP_NUM_THREADS={threads} DREAMFLOW_NO_PROGRESS=1 dreamflow stage1 --config {input.config}"
        " --prompt-file {input.prompt} --method {wildcards.method} --seed {wildcards.seed}"
        " --out {params.out} {params.wandb} > {log} 2>&1"
