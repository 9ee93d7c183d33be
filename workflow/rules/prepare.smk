# Small local files every stage reads: the resolved run config and each prompt's exact text
# (passed to the CLI as a file, so no command line is ever built from prompt text).


localrules:
    run_config,
    prompt_text,


rule run_config:
    output:
        suite_file("run_config.yaml"),
    params:
        value=RUN_CONFIG,
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/run_config.log",
    benchmark:
        "benchmarks/{suite}/run_config.tsv"
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
