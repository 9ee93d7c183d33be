"""Per-asset evaluation (`dreamflow evaluate`, the rule in `workflow/rules/evaluate.smk`): CLIP score and
R-precision (`metrics.py`, `toy_clip.py`), the toy world's ground-truth metrics (`toy_metrics.py`), the
stages' quality curves (`curves.py`) and how people read each metric (`metric_names.py`)."""
