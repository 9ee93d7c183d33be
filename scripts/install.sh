#!/usr/bin/env bash
# Create .venv (if missing) and install DreamFlow with its test extras, CPU build of torch.
# pip takes torch 2.14.1 / torchvision 0.29.1 from the machine's local wheels where present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# The report's 3D viewer and the glTF validator (npm registry); without npm the report still works.
bash scripts/build_viewer.sh || echo "warning: 3D viewer not built; reports fall back to turntables" >&2
