"""Comparison reports from the stages' own quality curves (`curve.csv`), which the workflow's compare
rules (`workflow/rules/compare.smk`) call through `dreamflow compare pick|race|recipe`:

* `tuning.py`: fair tuning, each method's best grid point on held-out prompts and seeds;
* `race.py` and `report.py`: the convergence race and its report (`race/race.md`, curves, plots);
* `recipe.py`: the recipe race, each method at its published budget (`recipe/recipe_race.md`).

Nothing here runs a stage: a report is a pure function of the curve files it is given
(docs/guides/comparisons.md).
"""
