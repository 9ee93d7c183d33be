"""The paper's human-preference study (`dreamflow preference`, `workflow/rules/preference.smk`):
`preference.py` pairs the assets, tallies votes and runs the automatic CLIP judge; `page.py` is the
blind page raters open.
"""
