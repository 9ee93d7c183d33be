# Comparisons as reports over the stages' own curve files (curve.csv, written when `curves.every`
# is set): the fair-tuning pick, the convergence race and the recipe race. Each reads files the
# stage rules made, so every (method, variant, prompt, seed, stage) is its own cached job.


include: "helpers/compare.smk"


localrules:
    race_report,
    recipe_report,


if TUNING:

    localrules:
        tuning_pick,

    rule tuning_pick:
        input:
            curves=curve_files(PLAN.grid_entries(), [TUNING["stage"]]),
        output:
            pick=pick_file(),
            grid=suite_file("tuning/tuning_grid.csv"),
            runs=suite_file("tuning/tuning_runs.csv"),
        params:
            stage=TUNING["stage"],
            points=shlex.quote(yaml.safe_dump({p: VARIANTS[p]["set"] for p in GRID_POINTS},
                                              default_flow_style=True).strip()),
        conda:
            CONDA_ENV
        log:
            "logs/{suite}/tuning_pick.log",
        benchmark:
            "benchmarks/{suite}/tuning_pick.tsv"
        shell:
            "dreamflow compare pick --stage {params.stage} --points {params.points} --curves {input.curves}"
            " --out {output.pick} > {log} 2>&1"


rule race_report:
    input:
        curves=PLAN.race_curve_files(),
        pick=[pick_file()] if TUNING else [],
    output:
        report=suite_file(RACE_REPORT),
        curves=suite_file("race/convergence_curves.csv"),
    params:
        settings=(f"--iou-threshold {config['race']['iou_threshold']} --colour-threshold {config['race']['colour_threshold']}"
                  f" --clip-threshold {config['race']['clip_threshold']} --eval-every {CURVES['every']}"
                  f" --eval-views {CURVES['views']}"),
        tuning=lambda wildcards, input: f"--tuning {input.pick[0]}" if input.pick else "",
        tuning_text=shlex.quote(f"{TUNING['stage']}, held-out prompts {', '.join(TUNING_PROMPTS.values())}; seeds "
                                f"{', '.join(map(str, TUNING['seeds']))}" if TUNING else ""),
        command=shlex.quote(regenerate_command()),
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/race_report.log",
    benchmark:
        "benchmarks/{suite}/race_report.tsv"
    shell:
        "dreamflow compare race --curves {input.curves} --out {output.report} --regenerate {params.command}"
        " {params.settings} {params.tuning} --tuning-text {params.tuning_text} > {log} 2>&1"


rule recipe_report:
    input:
        curves=curve_files(suite_entries()),
    output:
        report=suite_file(RECIPE_REPORT),
        csv=suite_file("recipe/recipe_race.csv"),
    params:
        bar=config["recipe"].get("bar", ""),
        candidates=" ".join(config["recipe"].get("candidates", [])),
        tolerance=config["recipe"].get("tolerance", 0.1),
        command=shlex.quote(regenerate_command()),
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/recipe_report.log",
    benchmark:
        "benchmarks/{suite}/recipe_report.tsv"
    shell:
        "dreamflow compare recipe --curves {input.curves} --out {output.report} --bar {params.bar}"
        " --candidates {params.candidates} --tolerance {params.tolerance} --regenerate {params.command} > {log} 2>&1"
