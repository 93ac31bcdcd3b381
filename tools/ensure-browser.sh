#!/usr/bin/env bash
# Make Debian's headless-capable Chromium, its matching driver and NSS's certutil present on the controller for
# the management UI's browser test (molecule/default/tests/test_management_ui.py). Nothing is downloaded at test
# time: Selenium drives these packages. Idempotent: does nothing when they are installed.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v certutil >/dev/null || missing+=(libnss3-tools)
((${#missing[@]} == 0)) && exit 0
warren_apt_install "${missing[@]}"
