#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for the browser tests (three.js
# viewer, report, preference study). Needs root; the tests skip with the reason without them.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "install_browser.sh needs root (apt-get install chromium chromium-driver)" >&2; exit 1; fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
