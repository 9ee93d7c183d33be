"""Write the resolved run config one step of one (variant, method) reads: the suite's run config with
the variant's overrides, the tuning's pick for this method when the variant takes it, and the method.
Only that method's recipe is written, so a change to another method's recipe never re-runs it."""
from pathlib import Path

import yaml

from dreamflow.config import for_method, load_config_data, to_dict

params = snakemake.params  # noqa: F821 - injected by Snakemake's script directive
overrides = dict(params.overrides)
for pick_path in snakemake.input.pick:  # noqa: F821
    picks = yaml.safe_load(Path(pick_path).read_text())
    method = overrides["guidance.method"]
    overrides = {**overrides, **picks[method]["set"]}
resolved = for_method(to_dict(load_config_data(params.data, overrides)))
Path(snakemake.output[0]).write_text(  # noqa: F821
    yaml.safe_dump({block: resolved[block] for block in params.blocks}, sort_keys=False), encoding="utf-8")
