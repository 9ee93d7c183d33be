"""Write one rule parameter (a prompt's exact text) to the rule's output."""
from pathlib import Path

import yaml

value = snakemake.params.value  # noqa: F821 - injected by Snakemake's script directive
output = Path(snakemake.output[0])  # noqa: F821
if isinstance(value, str):
    output.write_text(value + "\n", encoding="utf-8")
else:
    output.write_text(yaml.safe_dump(value, sort_keys=False), encoding="utf-8")
