# Helpers of the evaluation rule (workflow/rules/evaluate.smk).
def evaluate_inputs():
    """Every stage's checkpoint, the extracted mesh, and the timing records of the steps that made the asset."""
    inputs = {name: (lambda wildcards, stage=stage: asset_of(wildcards, stage.name, stage.path("ckpt")))
              for name, stage in STAGES.items()}
    inputs["mesh"] = lambda wildcards: asset_of(wildcards, EXTRACTION.name, EXTRACTION.path("mesh"))
    # Snakemake's benchmark records of the steps that made the asset: its timings.
    inputs["benchmarks"] = lambda wildcards: [made_by(bench(step), dict(wildcards.items()), step)
                                              for step in [*STAGES, EXTRACTION.name]]
    return inputs
