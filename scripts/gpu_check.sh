#!/usr/bin/env bash
# The GPU check, sized for a short lent GPU allocation (15 minutes with start-up, one command at most
# 10 minutes, no network, one output folder comes back): preflight, offline installs, the parity and
# device tests, then every stage and method at config/paper.yaml's settings with architecture-only
# priors for both back-end sets (`dreamflow perf gpu-report`, dreamflow/perf/gpu_report.py), highest
# priority first (APFO's three stages), each row in its own process, within --budget-s. Everything
# lands in --out DIR as it finishes: gpu_check.log (this script's whole output), preflight.json,
# tests.log, rows.jsonl (one line per finished row), rows.log (the workers' output), gpu_check.md
# (rewritten after every row; copied to docs/results/ when not a dry run). A failing step is
# recorded and the next one runs.
# Plan and commands: docs/guides/gpu.md.
#
#   bash scripts/gpu_check.sh --preflight --out DIR            # <= 10 s: GPU, driver, torch, CUDA, build tools, extensions
#   bash scripts/gpu_check.sh --prepare-wheels DIR             # with the package index: wheels of requirements/gpu-check.txt
#   bash scripts/gpu_check.sh --out DIR [--wheelhouse DIR] [--site DIR] [--budget-s S] [--row-timeout-s S]
#                             [--tests all|parity|none] [--remeasure] [--stages stage1 ...] [--methods apfo ...]
#   bash scripts/gpu_check.sh --dry-run --out DIR              # this CPU: every step at toy size, nothing installed
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
mode=run out="" wheelhouse="" site="$repo/.gpu/site" budget=480 budget_given=0 row_timeout=300 tests=all extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preflight) mode=preflight; shift ;;
    --prepare-wheels) mode=wheels; out="${2:?--prepare-wheels needs a folder}"; shift 2 ;;
    --dry-run) mode=dry; shift ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --wheelhouse) wheelhouse="${2:?--wheelhouse needs a folder}"; shift 2 ;;
    --site) site="${2:?--site needs a folder}"; shift 2 ;;
    --budget-s) budget="${2:?}" budget_given=1; shift 2 ;;
    --row-timeout-s) row_timeout="${2:?}"; shift 2 ;;
    --tests) tests="${2:?--tests all|parity|none}"; shift 2 ;;
    --skip-tests) tests=none; shift ;;
    --remeasure) extra+=(--remeasure); shift ;;
    --stages|--methods) extra+=("$1"); shift; while [ $# -gt 0 ] && [[ "$1" != --* ]]; do extra+=("$1"); shift; done ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
python=$(command -v python3 || command -v python)
[ -x .venv/bin/python ] && [ "$mode" = dry ] && python=.venv/bin/python
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
step() { echo; echo "== $1 ($(elapsed) s)"; }

if [ "$mode" = wheels ]; then
  # Run where the package index is reachable. cp312 manylinux x86-64 wheels, no dependencies
  # resolved (the list is closed by hand); then the closure is checked against the device image.
  mkdir -p "$out"
  "$python" -m pip download --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$out" -r requirements/gpu-check.txt || exit 1
  "$python" - "$out" requirements/gpu-check.txt <<'PY'
"""Every Requires-Dist (Python 3.12, Linux x86-64, no extras) of every wheel is in the folder or the image."""
import re, sys, zipfile
from pathlib import Path
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

folder, listing = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
image = {canonicalize_name(n) for line in listing.splitlines() if line.startswith("# image:") for n in line[8:].split()}
wheels = {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in folder.glob("*.whl")}
env = default_environment() | {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                               "platform_python_implementation": "CPython", "extra": ""}
missing = []
for name, wheel in sorted(wheels.items()):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    for line in re.findall(r"^Requires-Dist: (.+)$", metadata, re.M):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        needed = canonicalize_name(requirement.name)
        where = "wheelhouse" if needed in wheels else "image" if needed in image else "MISSING"
        print(f"  {name} needs {requirement}: {where}")
        if where == "MISSING":
            missing.append(f"{name} -> {requirement}")
size = sum(w.stat().st_size for w in wheels.values())
print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {folder}")
sys.exit(f"not in the wheelhouse nor the image: {missing}; add them to requirements/gpu-check.txt" if missing else 0)
PY
  exit $?
fi

[ -n "$out" ] || { echo "error: --out DIR is needed (the folder that comes back)" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec > >(tee -a "$out/gpu_check.log") 2>&1
echo "== gpu_check.sh $mode, $(date '+%Y-%m-%d %H:%M:%S'), out $out"
export PYTHONUNBUFFERED=1 DREAMFLOW_NO_PROGRESS=1
export PYTHONPATH="$site:$repo:$repo/lab${PYTHONPATH:+:$PYTHONPATH}"  # never `pip install -e .` there

preflight() {
  timeout 30 "$python" - "$out/preflight.json" <<'PY'
"""Facts the rest depends on, printed and saved for the report (a few seconds)."""
import glob, importlib.metadata as md, json, os, re, shutil, subprocess, sys

def run(*command):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=8)
        return (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({type(error).__name__})"

def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "missing"

facts = {"gpu": run("nvidia-smi", "--query-gpu=name,memory.total,driver_version,compute_cap", "--format=csv,noheader")}
facts["python"] = sys.version.split()[0]
import torch
from torch.utils.cpp_extension import CUDA_HOME
facts |= {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_visible": torch.cuda.is_available()}
if torch.cuda.is_available():
    facts["capability"] = "%d.%d" % torch.cuda.get_device_capability()
facts["setuptools"] = version("setuptools") + (" (no pkg_resources)" if not any(
    os.path.exists(os.path.join(p, "pkg_resources")) for p in sys.path if p) else "")
ninja = shutil.which("ninja")
facts["ninja"] = f"{ninja} {run(ninja, '--version')}" if ninja else "missing"
nvcc = shutil.which("nvcc") or (os.path.join(CUDA_HOME, "bin", "nvcc") if CUDA_HOME else None)
release = re.search(r"release [\d.]+", run(nvcc, "--version")) if nvcc and os.path.exists(nvcc) else None
facts["nvcc"] = f"{nvcc} ({release.group(0)})" if release else "missing"
facts["CUDA_HOME"] = CUDA_HOME or "unset"
roots = [r for r in {CUDA_HOME, "/usr/local/cuda"} if r] + [p for p in sys.path if p.endswith("-packages")]
def find(patterns):
    hits = sorted({h for root in roots for pattern in patterns for h in glob.glob(os.path.join(root, pattern))})
    return hits[0] if hits else "missing"
facts["nvrtc.h"] = find(["include/nvrtc.h", "targets/*/include/nvrtc.h", "nvidia/cu*/include/nvrtc.h",
                         "nvidia/cuda_nvrtc/include/nvrtc.h"])
libraries = run("ldconfig", "-p")
facts["libnvrtc"] = (re.search(r"libnvrtc\.so\S*", libraries) or [None])[0] or find(
    ["lib64/libnvrtc.so*", "targets/*/lib/libnvrtc.so*", "nvidia/cu*/lib/libnvrtc.so*", "nvidia/cuda_nvrtc/lib/libnvrtc.so*"])
facts["libcuda"] = (re.search(r"libcuda\.so\S*", libraries) or [None])[0] or next(
    (h for d in ("/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64") for h in glob.glob(f"{d}/libcuda.so*")), "missing")
from dreamflow.device import cuda_extension_problem
for module in ("tinycudann", "nvdiffrast.torch"):
    problem = cuda_extension_problem(module)
    facts[module] = "imports" if problem is None else problem
facts["packages"] = ", ".join(f"{n} {version(n)}" for n in ("diffusers", "transformers", "peft", "open_clip_torch",
                                                              "trimesh", "PyMCubes", "xatlas", "fast_simplification"))
for key, value in facts.items():
    print(f"  {key}: {value}")
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=1)
PY
}

step "preflight"
preflight || echo "preflight: failed (see above)"
[ "$mode" = preflight ] && exit 0

if [ "$mode" = dry ]; then
  config=config/pipeline/toy.yaml copy_to=() min_row=0
  [ "$tests" = all ] && tests=parity  # the device tests are the default run's; here, the CPU is shared
  report_args=(--steps 1 --warmup 1 --set device=cpu --set stage3.resolution=64)
  [ "$budget_given" = 1 ] || budget=1800
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # a shared CPU: one thread per process
else
  config=config/paper.yaml copy_to=(--copy-to "$repo/docs/results/gpu_check.md") min_row=45
  report_args=(--architecture-only)
  if [ -n "$wheelhouse" ]; then
    step "install $wheelhouse into $site (--no-index --no-deps --target; nothing else changes)"
    mkdir -p "$site"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$wheelhouse"/*.whl || echo "install: failed (the rows will say what is missing)"
  fi
fi
step "CUDA extensions (a missing one is not fatal: the torch back-end set is measured either way)"
"$python" -c 'from dreamflow.device import cuda_extension_problem as p
for m in ("tinycudann", "nvdiffrast.torch"): print("  " + m + ": " + (p(m) or "imports"))'

test_files=(tests/test_hashgrid.py tests/test_rasterize.py)  # parity: tinycudann and nvdiffrast vs the torch back ends
[ "$tests" = all ] && test_files+=(tests/test_devices.py)    # the simulated device, the sync counts
if [ "$tests" != none ]; then
  step "tests ($tests) -> tests.log"
  timeout 300 "$python" -m pytest -q -p no:cacheprovider -n 0 -rs "${test_files[@]}" >> "$out/tests.log" 2>&1
  echo "  pytest exit $? ($(grep -E '[0-9]+ (passed|failed)' "$out/tests.log" | tail -n 1))"
fi

left=$(( budget - $(elapsed) ))
step "rows: ${left} s of the budget left -> $out/gpu_check.md"
merge=()
[ -f docs/results/gpu_check_rows.jsonl ] && [ "$mode" != dry ] && merge=(--merge docs/results/gpu_check_rows.jsonl)
"$python" -m dreamflow.cli perf gpu-report --config "$config" --out-dir "$out" --budget-s "$left" \
  --row-timeout-s "$row_timeout" --preflight "$out/preflight.json" "${report_args[@]}" "${merge[@]}" \
  --min-row-s "$min_row" "${copy_to[@]}" "${extra[@]}"
status=$?
step "done: rows exit $status; $(grep -c '"status": "ok"' "$out/rows.jsonl" 2>/dev/null || echo 0) rows ok in $out/rows.jsonl"
ls -l "$out"
exit $status
