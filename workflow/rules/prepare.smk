# Small local files every stage reads: the resolved run config and each prompt's exact text
# (passed to the CLI as a file, so no command line is ever built from prompt text).


localrules:
    run_config,
    prompt_text,


rule run_config:
    output:
        RESULTS + "/{suite}/run_config.yaml",
    params:
        pipeline=RUN_CONFIG,
    log:
        "logs/{suite}/run_config.log",
    benchmark:
        "benchmarks/{suite}/run_config.tsv"
    run:
        Path(output[0]).write_text(yaml.safe_dump(params.pipeline, sort_keys=False))


rule prompt_text:
    output:
        RESULTS + "/{suite}/prompts/{slug}.txt",
    params:
        prompt=lambda wildcards: PROMPTS[wildcards.slug],
    log:
        "logs/{suite}/prompts/{slug}.log",
    benchmark:
        "benchmarks/{suite}/prompts/{slug}.tsv"
    run:
        Path(output[0]).write_text(params.prompt + "\n", encoding="utf-8")
