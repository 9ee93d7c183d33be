# Helpers of the suite report (workflow/rules/report.smk); the Snakefile's `onerror` calls write_partial_summary.
def all_metrics(wildcards):
    return [entry_path(e, "metrics.json") for e in suite_entries()]


def write_partial_summary():
    """After a failed run: the suite summary with every asset, failed or missing ones marked, none dropped."""
    if "summary" not in REPORTS:
        return
    from dreamflow.report.summary import summarize_suite

    paths, labels = [], []
    for entry in suite_entries():
        method, variant, slug, seed = entry
        paths.append(entry_path(entry, "metrics.json"))
        labels.append({"method": method, "variant": variant, "seed": seed, "prompt": PROMPTS[slug]})
    out_dir = os.path.join(RESULTS, SUITE)
    try:
        summarize_suite(paths, out_dir, SUITE, labels)
        print(f"Some jobs failed: {out_dir}/summary.md lists every asset with its status (failed ones marked).")
    except Exception as error:  # a report problem must not hide the jobs' own errors
        print(f"Could not write the partial suite summary: {type(error).__name__}: {error}")
