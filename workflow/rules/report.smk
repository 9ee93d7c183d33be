# Suite aggregate: summary.csv (pandas), summary.md per method, plots and report.html.


localrules:
    summarize,


rule summarize:
    input:
        all_metrics,
    output:
        csv=report(RESULTS + "/{suite}/summary.csv", category="Summary"),
        md=RESULTS + "/{suite}/summary.md",
        html=RESULTS + "/{suite}/report.html",
        plot=report(RESULTS + "/{suite}/quality_vs_time.png", category="Summary", caption="../report/quality_vs_time.rst"),
    log:
        "logs/{suite}/summarize.log",
    benchmark:
        "benchmarks/{suite}/summarize.tsv"
    shell:
        "dreamflow summarize --suite {wildcards.suite} --out-dir {RESULTS}/{wildcards.suite}"
        " --metrics {input} > {log} 2>&1"
