#!/usr/bin/env bash
# Build the 3D viewer that report.html and the preference study embed: three.js (GLTFLoader,
# OrbitControls) from the npm registry, bundled by esbuild into one classic script,
# dreamflow/report/static/dreamflow-viewer.js, so pages work from file:// with no network.
# Also installs the Khronos glTF validator the tests run. Needs node >= 18 and npm.
set -euo pipefail
cd "$(dirname "$0")/../viewer"
if ! command -v npm >/dev/null; then
  echo "build_viewer.sh: npm not found; reports will show turntables without the 3D viewer" \
       "(install Node.js >= 18 and rerun: bash scripts/build_viewer.sh)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
