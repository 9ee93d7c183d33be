#!/usr/bin/env bash
# Install the CUDA extensions (tinycudann hash grid, nvdiffrast rasteriser) against the installed
# torch, in the active environment (see environment.yml), then say which back end each part uses.
#
#   bash scripts/install_gpu_extensions.sh                      # build from upstream sources (needs internet)
#   bash scripts/install_gpu_extensions.sh --wheels-to DIR      # build wheels into DIR (login node), no install
#   bash scripts/install_gpu_extensions.sh --wheelhouse DIR [--target SITE]
#                                                               # offline: install the wheels in DIR, nothing else;
#                                                               # one missing is skipped (its torch fallback runs)
#
# Clusters whose compute nodes have no internet: build the wheels once on a login or build node
# (`--wheels-to`), copy DIR to shared storage, install with `--wheelhouse DIR` on the nodes. A node
# without a GPU needs the target architectures: TCNN_CUDA_ARCHITECTURES="80;90" (A100, H100);
# TORCH_CUDA_ARCH_LIST (nvdiffrast, torch's builder) is derived from it when unset. A machine with
# neither network nor wheels: docs/guides/gpu.md (the lent-GPU plan builds them from carried sources).
set -euo pipefail
wheelhouse="" wheels_to="" target=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) wheelhouse="$2"; shift 2 ;;
    --wheels-to) wheels_to="$2"; shift 2 ;;
    --target) target=(--target "$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (use --wheelhouse DIR or --wheels-to DIR)" >&2; exit 2 ;;
  esac
done
if [ -n "$wheelhouse" ]; then  # offline: never fall back to a build from the network
  for package in tinycudann nvdiffrast; do
    if ls "$wheelhouse"/"$package"-*.whl >/dev/null 2>&1; then
      echo "$package: installing from $wheelhouse"
      pip install --no-index --no-deps --no-compile "${target[@]}" "$wheelhouse"/"$package"-*.whl \
        || echo "$package: install failed; the pure-PyTorch back end will be used"
    else
      echo "$package: no wheel in $wheelhouse; skipped (the pure-PyTorch back end will be used)"
    fi
  done
  python -c 'from dreamflow.device import cuda_extension_problem as p
for m in ("tinycudann", "nvdiffrast.torch"): print(m + ": " + (p(m) or "imports"))' || true
  exit 0
fi
TCNN_SOURCE="git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch"
NVDIFFRAST_SOURCE="git+https://github.com/NVlabs/nvdiffrast"

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
    echo "error: no GPU visible to build for: set TCNN_CUDA_ARCHITECTURES (e.g. 80 for A100, 90 for H100, \"80;90\")" >&2
    exit 1
  fi
fi
if [ -n "${TCNN_CUDA_ARCHITECTURES:-}" ]; then
  export TCNN_CUDA_ARCHITECTURES
  # torch's builder (nvdiffrast) wants "8.0;9.0" where tiny-cuda-nn takes "80;90".
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$(echo "$TCNN_CUDA_ARCHITECTURES" | sed -E 's/([0-9])([0-9])/\1.\2/g')}"
  echo "building for TCNN_CUDA_ARCHITECTURES=$TCNN_CUDA_ARCHITECTURES TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
fi

if [ -n "$wheels_to" ]; then
  mkdir -p "$wheels_to"
  # --no-build-isolation: the extensions compile against the torch already installed here.
  pip wheel --no-deps --no-build-isolation -w "$wheels_to" "$TCNN_SOURCE" "$NVDIFFRAST_SOURCE"
  ls -l "$wheels_to"
  echo "wheels in $wheels_to: install them with  bash scripts/install_gpu_extensions.sh --wheelhouse $wheels_to"
  exit 0
fi
for source in "$TCNN_SOURCE" "$NVDIFFRAST_SOURCE"; do
  echo "building and installing $source"
  pip install --no-build-isolation "${target[@]}" "$source"
done
python - <<'PY'
from dreamflow.geometry.hashgrid import tcnn_available
from dreamflow.render.rasterize import nvdiffrast_available
import torch
print(f"CUDA device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none visible'}")
print(f"hash grid:   {'tinycudann' if tcnn_available() else 'pure PyTorch (tinycudann needs a visible GPU and the module)'}")
print(f"rasteriser:  {'nvdiffrast (CUDA context)' if nvdiffrast_available() else 'pure PyTorch (nvdiffrast needs a visible GPU and the module)'}")
PY
