# Per-asset evaluation: CLIP score over rendered views, CLIP R-precision by DreamFusion's protocol (each
# CLIP model and render mode), toy ground-truth metrics, time and memory per stage, back end.


include: "helpers/evaluate.smk"


rule evaluate:
    input:
        config=step_config_file("evaluate"),
        prompt=suite_file("prompts/{slug}.txt"),
        suite_prompts=lambda wildcards: prompt_file_of(wildcards.slug),  # its group's file in a suite of groups
        captions=EVALUATE["captions"] or [],  # checked when planning (helpers/evaluate.smk)
        clip=local_files(*(model["pretrained"] for model in EVALUATE["clip_models"])),
        **evaluate_inputs(),
    output:
        metrics=asset("metrics.json"),
        stages=asset("stages.png"),  # truth | stage 1 | 2 | 3 from two held-out views
    params:
        prompt=prompt_arguments,
        clip=clip_arguments(),
        retrieval=retrieval_arguments,
        views=EVALUATE["views"],
        detail_views=EVALUATE["detail_views"],
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
        " {params.prompt} --method {wildcards.method} --variant {wildcards.variant} --seed {wildcards.seed}"
        " " + " ".join(f"--{name} {{input.{name}}}" for name in STAGES) + " --mesh {input.mesh}"
        " --out {output.metrics} {params.clip} {params.retrieval}"
        " --views {params.views} --detail-views {params.detail_views}"
        " --suite-prompts {input.suite_prompts} --benchmarks {input.benchmarks} > {log} 2>&1"
