#!/usr/bin/env bash
# The GPU check, sized for a short GPU allocation (15 min, start-up included): install the
# CUDA extensions from wheels, run their parity tests against the pure-PyTorch back ends (values and
# gradients) and the device tests, then measure every stage and method at config/paper.yaml's
# settings with architecture-only priors, for both back-end sets: s/iteration, the method's floor,
# syncs/iteration, peak GPU memory, and the projected time per asset for each published recipe.
# Writes docs/results/gpu_check.md.
#
#   bash scripts/gpu_check.sh --wheelhouse DIR [--stages stage1 ...] [--methods apfo ...]   # on a GPU
#   bash scripts/gpu_check.sh --dry-run        # on a CPU: every step at toy size, nothing installed,
#                                              # report to results/gpu_check_dry_run.md
# Extensions without a wheelhouse: bash scripts/install_gpu_extensions.sh (builds from upstream).
set -euo pipefail
cd "$(dirname "$0")/.."
dry_run=0 wheelhouse="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --wheelhouse) wheelhouse="$2"; shift 2 ;;
    --stages|--methods) flag="$1"; shift; extra+=("$flag"); while [ $# -gt 0 ] && [[ "$1" != --* ]]; do extra+=("$1"); shift; done ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }
if [ "$dry_run" = 1 ]; then
  [ -x .venv/bin/python ] || bash scripts/install.sh
  . .venv/bin/activate
  config=config/toy.yaml out=results/gpu_check_dry_run.md
  report_args=(--config "$config" --steps 1 --warmup 1 --set stage3.resolution=64 --out "$out")
else
  if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: torch sees no CUDA device')"
  config=config/paper.yaml out=docs/results/gpu_check.md
  report_args=(--config "$config" --architecture-only --out "$out")
  step "CUDA extensions"
  if [ -n "$wheelhouse" ]; then
    bash scripts/install_gpu_extensions.sh --wheelhouse "$wheelhouse"
  else
    echo "no --wheelhouse: using what is installed"
  fi
fi
python - <<'PY'
from dreamflow.geometry.hashgrid import tcnn_available
from dreamflow.render.rasterize import nvdiffrast_available
print(f"hash grid: {'tinycudann' if tcnn_available() else 'pure PyTorch'}; "
      f"rasteriser: {'nvdiffrast' if nvdiffrast_available() else 'pure PyTorch'}")
PY
step "parity: tinycudann vs torch hash grid, nvdiffrast vs torch rasteriser (values, alpha, gradients)"
python -m pytest -q -p no:cacheprovider -n 0 -m gpu -rs tests/test_hashgrid.py tests/test_rasterize.py 2>&1 | tail -n 6
step "device tests (simulated CUDA on a CPU; the real device on a GPU)"
python -m pytest -q -p no:cacheprovider -n 0 tests/test_devices.py 2>&1 | tail -n 3
step "throughput per stage, method and back-end set -> $out"
python -m dreamflow.benchmarks.gpu_report "${report_args[@]}" "${extra[@]}"
step "done"
