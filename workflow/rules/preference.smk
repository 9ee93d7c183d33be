# The paper's human-preference study, for suites with the reference method (DreamFlow) and at least
# one baseline: a blind page for raters (study/, sent to them) with its key kept apart, and the
# automatic CLIP judge's table on the same pairs. Human votes are tallied with
# `dreamflow preference tally VOTES... --key results/{suite}/study_key.json`.


localrules:
    preference_study,
    preference_judge,


rule preference_study:
    input:
        # The study compares methods at the suite's first variant (the one every method runs).
        lambda wildcards: [entry_path(e, "metrics.json") for e in PLAN.study_entries()],
    output:
        page=suite_file("study/index.html"),
        assets=directory(suite_file("study/assets")),
        key=suite_file("study_key.json"),
    params:
        out_dir=lambda wildcards, output: str(Path(output.page).parent),
        reference=config["preference"]["reference"],
        seed=config["preference"]["seed"],
        janus="" if config["preference"]["janus"] else "--no-janus",
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/preference_study.log",
    benchmark:
        "benchmarks/{suite}/preference_study.tsv"
    shell:
        "dreamflow preference study --suite {wildcards.suite} --out-dir {params.out_dir} --key {output.key}"
        " --reference {params.reference} --seed {params.seed} {params.janus} --metrics {input} > {log} 2>&1"


rule preference_judge:
    input:
        key=suite_file("study_key.json"),
    output:
        votes=suite_file("preference_judge.json"),
        table=suite_file("preference_judge.md"),
        csv=suite_file("preference_judge.csv"),
        plot=report(suite_file("preference_judge.png"), category="Summary"),
    params:
        margin=config["preference"]["judge_margin"],
        clip_model=config["evaluate"]["clip_models"][0]["model"],
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/preference_judge.log",
    benchmark:
        "benchmarks/{suite}/preference_judge.tsv"
    shell:
        "dreamflow preference judge --key {input.key} --out {output.votes} --margin {params.margin}"
        " --clip-model {params.clip_model} > {log} 2>&1"
