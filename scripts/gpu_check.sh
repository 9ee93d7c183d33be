#!/usr/bin/env bash
# For a session with a CUDA GPU: build/import tinycudann and nvdiffrast, run their parity tests, run
# the paper rehearsal on CUDA in fp16, and measure throughput and peak GPU memory per stage at the
# paper's resolutions (random-weight real architectures) into docs/gpu_check_full.md.
#   bash scripts/gpu_check.sh [--skip-build]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install.sh
. .venv/bin/activate
nvidia-smi
out=docs/gpu_check_full.md  # docs/gpu_check.md holds the first GPU run (offline, scripts/gpu_stage_check.py)
{
  echo "# GPU check ($(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -n 1))"
  echo
  echo "Written by \`bash scripts/gpu_check.sh\`."
} > "$out"
if [ "${1:-}" != "--skip-build" ]; then
  # On a CPU-wheel venv, the CUDA torch comes first (PyPI's default build of the pinned version).
  python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" || \
    pip install --force-reinstall --no-deps torch==2.14.1 torchvision==0.29.1
  bash scripts/install_gpu_extensions.sh 2>&1 | tail -n 5 || echo "extension build failed (see above)"
fi
echo "## Parity tests (tinycudann, nvdiffrast)" >> "$out"
python -m pytest -q -m gpu -p no:cacheprovider tests/test_hashgrid.py tests/test_rasterize.py 2>&1 | tail -n 5 | sed 's/^/    /' >> "$out" || true
echo "## Device test on a real GPU" >> "$out"
python -m pytest -q -p no:cacheprovider tests/test_devices.py 2>&1 | tail -n 3 | sed 's/^/    /' >> "$out" || true
echo "## Rehearsal on CUDA, fp16 (config/paper.yaml + paper-rehearsal.yaml, device cuda)" >> "$out"
python - <<'PY'
import yaml
data = yaml.safe_load(open("config/paper-rehearsal.yaml"))
data["suite"] = "paper-rehearsal-cuda"
data["pipeline_overrides"].update({"device": "cuda", "nerf.encoding.backend": "auto", "rasterizer": "auto"})
for rule in ("stage1", "stage2", "stage3"):
    data["resources"][rule]["gpu"] = 1
yaml.safe_dump(data, open("results/paper-rehearsal-cuda.yaml", "w"))
PY
start=$(date +%s)
if snakemake --cores all --resources gpu=1 --configfile config/paper.yaml results/paper-rehearsal-cuda.yaml > results/rehearsal-cuda.log 2>&1; then
  echo "    passed in $(( $(date +%s) - start )) s" >> "$out"
  python - >> "$out" <<'PY'
import glob, pandas as pd
rows = [pd.read_csv(f, sep="\t").assign(rule=f.split("/")[-1][:-4]) for f in sorted(glob.glob("benchmarks/paper-rehearsal-cuda/**/*.tsv", recursive=True))]
print(pd.concat(rows)[["rule", "s", "max_rss"]].to_markdown(index=False))
PY
else
  echo "    FAILED: tail of results/rehearsal-cuda.log:" >> "$out"; tail -n 20 results/rehearsal-cuda.log | sed 's/^/    /' >> "$out"
fi
echo "## Throughput and peak GPU memory per stage at paper resolution (architecture-only, fp16 UNet)" >> "$out"
dreamflow benchmark --throughput-only --config config/paper.yaml --set prior.architecture_only=true \
  --set refiner_prior.architecture_only=true >> "$out" 2>&1 || echo "throughput failed" >> "$out"
cat "$out"
