# Small local files every step reads: the resolved run config of each (variant, method) and each
# prompt's exact text (passed to the CLI as a file, so no command line is ever built from prompt text).


localrules:
    step_config,
    prompt_text,


rule step_config:
    input:
        # The variant that takes the tuning's picks reads them (each method its own best grid point).
        pick=lambda wildcards: [pick_file().format(suite=wildcards.suite)] if wildcards.variant == TUNED else [],
    output:
        step_config_file("{step}"),
    params:
        data=PIPELINE_DATA,
        overrides=lambda wildcards: {**variant_overrides(wildcards.variant), "guidance.method": wildcards.method},
        blocks=lambda wildcards: STEP_BLOCKS[wildcards.step],
    wildcard_constraints:
        step="|".join(STEP_BLOCKS),
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/config/{variant}/{method}/{step}.log",
    benchmark:
        "benchmarks/{suite}/config/{variant}/{method}/{step}.tsv"
    script:
        "../scripts/write_step_config.py"


rule prompt_text:
    output:
        suite_file("prompts/{slug}.txt"),
    params:
        value=lambda wildcards: ALL_PROMPTS[wildcards.slug],
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/prompts/{slug}.log",
    benchmark:
        "benchmarks/{suite}/prompts/{slug}.tsv"
    script:
        "../scripts/write_param.py"
