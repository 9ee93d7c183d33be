#!/usr/bin/env bash
# Quick start, command 1: install, then run the toy suite end to end on CPU
# (3 prompts x stage 1 -> mesh -> stage 2 -> stage 3 -> evaluation -> report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
snakemake --cores all "$@"
echo "Report: results/toy/report.html   Table: results/toy/summary.md"
