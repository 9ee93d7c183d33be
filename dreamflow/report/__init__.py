"""The suite report (`dreamflow summarize`, the rule in `workflow/rules/report.smk`):

* `summary.py`: summary.csv and summary.md from every asset's metrics.json, and the plots;
* `tables.py`: the columns people read (names, units, arrows, per-stage groups);
* `page.py`: report.html, one card per asset with its stage strip, turntable and 3D view;
* `viewer.py`: the bundled three.js viewer (`static/`, built by scripts/build_viewer.sh).
"""
