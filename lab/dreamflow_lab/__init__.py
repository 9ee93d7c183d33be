"""DreamFlow's research wing: experiments on the project's own outputs and models.

It depends on `dreamflow` and is never imported by it. Its command is `dreamflow-lab`; each
experiment is a folder under lab/experiments/ holding its config or script and its report.
"""
