# Helpers of workflow/rules/export_views.smk: the asset whose views a layout folder holds, read from its prompt id.
def _asset_values(wildcards):
    """The asset of a layout folder: its prompt id read back to the prompt's slug (ids are unique in such a suite)."""
    if wildcards.prompt_id not in PLAN.slug_of_id:
        raise ValueError(f"no prompt of suite {wildcards.suite!r} has id {wildcards.prompt_id} (its prompt file "
                         f"gives {len(PLAN.slug_of_id)} ids): ask for a layout folder of one of them, or add the "
                         "prompt with that id to the suite's prompt file")
    return {"suite": wildcards.suite, "method": wildcards.method, "variant": wildcards.variant,
            "slug": PLAN.slug_of_id[wildcards.prompt_id], "seed": wildcards.seed}


def layout_checkpoint(wildcards):
    """The final stage's checkpoint of the asset (in the folder of the variant that ran that stage)."""
    return made_by(asset(STAGES[FINAL_STAGE].path("ckpt")), _asset_values(wildcards), FINAL_STAGE)


def layout_prompt_file(wildcards):
    """The prompt file that gives the asset's prompt its id (export-views checks the id against it)."""
    return prompt_file_of(_asset_values(wildcards)["slug"])
