# Each asset's renders in an evaluator's layout, when the suite asks for one (`export_views.layouts`):
# GPTEval3D's 120 threestudio test views, rgb_<i>.png and normal_<i>.png, filed by method, prompt id and
# seed under results/{suite}/gpteval3d/{variant}/methods/, the folder tree its tournament scripts read.


include: "helpers/export_views.smk"


rule export_views:
    input:
        config=step_config_file(FINAL_STAGE),
        ckpt=layout_checkpoint,
        prompts=layout_prompt_file,
    output:
        directory(PLAN.views_folder("{layout}")),
    params:
        root=lambda wildcards: PLAN.views_root(wildcards.layout).format(**wildcards),
        resolution=config["export_views"]["resolution"],
    wildcard_constraints:
        layout="gpteval3d",
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/{layout}/{variant}/{method}/{prompt_id}/{seed}.log",
    benchmark:
        "benchmarks/{suite}/{layout}/{variant}/{method}/{prompt_id}/{seed}.tsv"
    threads: threads_of("export_views")
    resources:
        mem_mb=resources_of("export_views", "mem_mb"),
        runtime=resources_of("export_views", "runtime"),
        gpu=gpus_of("export_views"),
    shell:
        "OMP_NUM_THREADS={threads} dreamflow export-views --layout {wildcards.layout} --config {input.config}"
        " --ckpt {input.ckpt} --prompts {input.prompts} --prompt-id {wildcards.prompt_id}"
        " --method {wildcards.method} --seed {wildcards.seed} --resolution {params.resolution}"
        " --out {params.root} > {log} 2>&1"
