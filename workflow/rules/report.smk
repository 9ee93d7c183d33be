# Suite aggregate: summary.csv (pandas), summary.md per method, plots and report.html.


localrules:
    summarize,


rule summarize:
    input:
        all_metrics,
    output:
        csv=report(suite_file("summary.csv"), category="Summary"),
        md=suite_file("summary.md"),
        html=suite_file("report.html"),
        plot=report(suite_file("quality_vs_time.png"), category="Summary", caption="../report/quality_vs_time.rst"),
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
