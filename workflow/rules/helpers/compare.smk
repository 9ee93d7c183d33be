# Helpers of the comparison rules (workflow/rules/compare.smk).
from dreamflow.planner import RACE_REPORT, RECIPE_REPORT


def regenerate_command():
    """How a reader regenerates a report: this workflow with the suite's config file."""
    files = getattr(workflow, "overwrite_configfiles", None) or []
    return "snakemake --cores all" + "".join(f" --configfile {os.path.relpath(f)}" for f in files)
