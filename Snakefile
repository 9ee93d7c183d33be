# DreamFlow workflow: every stage, mesh extraction, evaluation and the report is a file-based rule.
#   snakemake --cores all                                    # toy suite on CPU (config/config.yaml)
#   snakemake --cores all --profile slurm --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# The default target must be the first rule of this file (an `all` in an included file is not).
rule all:
    input:
        suite_targets(),
    default_target: True


include: "workflow/rules/prepare.smk"
include: "workflow/rules/stages.smk"
include: "workflow/rules/extract_mesh.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/export_views.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/preference.smk"
include: "workflow/rules/compare.smk"


# A failed job stops its own chain only (profiles use keep-going); the summary still lists every
# asset, with failed ones marked, instead of being skipped.
onerror:
    write_partial_summary()
