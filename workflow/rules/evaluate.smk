# Per-asset evaluation: CLIP score over rendered views, toy ground-truth metrics, timings, back end.


include: "helpers/evaluate.smk"


rule evaluate:
    input:
        config=step_config_file("evaluate"),
        prompt=suite_file("prompts/{slug}.txt"),
        suite_prompts=lambda wildcards: prompt_file_of(wildcards.slug),  # its group's file in a suite of groups
        clip=local_files(config["evaluate"]["clip_pretrained"]),
        **evaluate_inputs(),
    output:
        metrics=asset("metrics.json"),
        stages=asset("stages.png"),  # truth | stage 1 | 2 | 3 from two held-out views
    params:
        clip_model=config["evaluate"]["clip_model"],
        # The declared weights file when local, else an open_clip pretrained tag (e.g. `openai`).
        clip_pretrained=lambda wildcards, input: input.clip or config["evaluate"]["clip_pretrained"],
        views=config["evaluate"]["views"],
        detail_views=config["evaluate"]["detail_views"],
    conda:
        CONDA_ENV
    log:
        logfile("evaluate"),
    benchmark:
        bench("evaluate")
    threads: 1
    resources:
        mem_mb=resources_of("evaluate", "mem_mb"),
        runtime=resources_of("evaluate", "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} dreamflow evaluate --config {input.config} --prompt-file {input.prompt}"
        " --method {wildcards.method} --variant {wildcards.variant} --seed {wildcards.seed}"
        " " + " ".join(f"--{name} {{input.{name}}}" for name in STAGES) + " --mesh {input.mesh}"
        " --out {output.metrics} --clip-model {params.clip_model} --clip-pretrained {params.clip_pretrained}"
        " --views {params.views} --detail-views {params.detail_views}"
        " --suite-prompts {input.suite_prompts} --benchmarks {input.benchmarks} > {log} 2>&1"
