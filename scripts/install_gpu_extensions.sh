#!/usr/bin/env bash
# Build and install the CUDA extensions (tinycudann hash grid, nvdiffrast rasteriser) against the
# installed torch, in the active environment (see environment.yml). Run it on a GPU node, or on a
# GPU-less build node with TCNN_CUDA_ARCHITECTURES set (e.g. "80;90" for A100 and H100).
#   bash scripts/install_gpu_extensions.sh
set -euo pipefail
python - <<'PY'
import re, shutil, subprocess, sys
import torch
if torch.version.cuda is None:
    sys.exit("error: this torch is a CPU build; install the CUDA build (environment.yml) first")
nvcc = shutil.which("nvcc")
if nvcc is None:
    sys.exit("error: nvcc not found: install the CUDA toolkit (conda: cuda-toolkit=" + torch.version.cuda.split(".")[0] + ".x)")
version = re.search(r"release (\d+)\.(\d+)", subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout)
if version.group(1) != torch.version.cuda.split(".")[0]:
    sys.exit(f"error: nvcc is CUDA {version.group(1)}.{version.group(2)} but torch was built with CUDA {torch.version.cuda}: "
             "torch's extension builder refuses a major-version mismatch; install the matching toolkit")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), nvcc {version.group(1)}.{version.group(2)}: ok")
PY
if [ -z "${TCNN_CUDA_ARCHITECTURES:-}" ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    TCNN_CUDA_ARCHITECTURES=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '.')
  else
    echo "error: no GPU visible: set TCNN_CUDA_ARCHITECTURES (e.g. 80 for A100, 90 for H100)" >&2
    exit 1
  fi
fi
export TCNN_CUDA_ARCHITECTURES
echo "building tinycudann for compute capability ${TCNN_CUDA_ARCHITECTURES}"
# --no-build-isolation: the extensions compile against the torch already installed here.
pip install --no-build-isolation "git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch"
pip install --no-build-isolation "git+https://github.com/NVlabs/nvdiffrast"
python -c "import tinycudann, nvdiffrast.torch; print('tinycudann and nvdiffrast import')"
