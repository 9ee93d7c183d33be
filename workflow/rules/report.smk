# Suite aggregate: summary.csv (pandas, one row per asset), spread.csv (mean ± sd over seeds per method
# and per prompt), paired.csv (differences between methods with bootstrap intervals), r_precision.csv
# (per asset, CLIP model and render mode), summary.md, plots and report.html (+ report_files/: the 3D
# viewer and each asset's .glb as scripts, so the page works from file://).


include: "helpers/report.smk"


localrules:
    summarize,


rule summarize:
    input:
        all_metrics,
    output:
        csv=report(suite_file("summary.csv"), category="Summary"),
        md=suite_file("summary.md"),
        spread=suite_file("spread.csv"),
        paired=suite_file("paired.csv"),
        r_precision=suite_file("r_precision.csv"),
        html=suite_file("report.html"),
        plot=report(suite_file("quality_vs_time.png"), category="Summary", caption="../report/quality_vs_time.rst"),
        stages_plot=suite_file("metrics_by_stage.png"),
        files=directory(suite_file("report_files")),
    params:
        out_dir=lambda wildcards, output: str(Path(output.csv).parent),
    conda:
        CONDA_ENV
    log:
        "logs/{suite}/summarize.log",
    benchmark:
        "benchmarks/{suite}/summarize.tsv"
    shell:
        "dreamflow summarize --suite {wildcards.suite} --out-dir {params.out_dir}"
        " --metrics {input} > {log} 2>&1"
