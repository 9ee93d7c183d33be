# Helpers of the evaluation rule (workflow/rules/evaluate.smk).
EVALUATE = config["evaluate"]
if EVALUATE["captions"]:
    require_public_file(EVALUATE["captions"])  # a public caption set is fetched, never committed: say how


def evaluate_inputs():
    """Every stage's checkpoint, the extracted mesh, and the timing records of the steps that made the asset."""
    inputs = {name: (lambda wildcards, stage=stage: asset_of(wildcards, stage.name, stage.path("ckpt")))
              for name, stage in STAGES.items()}
    inputs["mesh"] = lambda wildcards: asset_of(wildcards, EXTRACTION.name, EXTRACTION.path("mesh"))
    # Snakemake's benchmark records of the steps that made the asset: its timings.
    inputs["benchmarks"] = lambda wildcards: [made_by(bench(step), dict(wildcards.items()), step)
                                              for step in [*STAGES, EXTRACTION.name]]
    return inputs


def clip_arguments():
    """--clip-model and --clip-pretrained, one entry per model of `evaluate.clip_models`, in order."""
    models = EVALUATE["clip_models"]
    return (f"--clip-model {' '.join(shlex.quote(m['model']) for m in models)}"
            f" --clip-pretrained {' '.join(shlex.quote(m['pretrained']) for m in models)}")


def prompt_arguments(wildcards):
    """--prompt-id and --group of the asset's prompt (its id in its file, its group in a suite of groups)."""
    entry = PROMPT_ENTRIES[wildcards.slug]
    return f"--prompt-id {shlex.quote(entry.id)}" + (f" --group {shlex.quote(entry.group)}" if entry.group else "")


def retrieval_arguments(wildcards, input):
    """The R-precision protocol's flags: render modes, the view, and the caption file when the suite names one."""
    args = (f"--render-modes {' '.join(EVALUATE['render_modes'])} --view-elevation {EVALUATE['view_elevation']}"
            f" --view-azimuth {EVALUATE['view_azimuth']} --view-distance-in-radii {EVALUATE['view_distance_in_radii']}"
            f" --view-fovy {EVALUATE['view_fovy']}")
    return args + (f" --captions {shlex.quote(str(input.captions))}" if input.captions else "")
