# Small local files every stage reads: the resolved run config and each prompt's exact text
# (passed to the CLI as a file, so no command line is ever built from prompt text).


localrules:
    step_config,
    prompt_text,


rule step_config:
    output:
        suite_file("config/{step}.yaml"),
    params:
        value=lambda wildcards: step_config(wildcards.step),
    wildcard_constraints:
        step="|".join(STEP_BLOCKS),
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/config/{step}.log",
    benchmark:
        "benchmarks/{suite}/config/{step}.tsv"
    script:
        "../scripts/write_param.py"


rule prompt_text:
    output:
        suite_file("prompts/{slug}.txt"),
    params:
        value=lambda wildcards: PROMPTS[wildcards.slug],
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/prompts/{slug}.log",
    benchmark:
        "benchmarks/{suite}/prompts/{slug}.tsv"
    script:
        "../scripts/write_param.py"
