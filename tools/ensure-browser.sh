#!/usr/bin/env bash
# Make Debian's headless-capable Chromium, its matching driver and NSS's certutil present on the controller for
# the management UI's browser test (molecule/default/tests/test_management_ui.py). Nothing is downloaded at test
# time: Selenium drives these packages. Idempotent: does nothing when they are installed.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v certutil >/dev/null || missing+=(libnss3-tools)
((${#missing[@]} == 0)) && exit 0
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "ensure-browser: install ${missing[*]} (Debian packages) to run the browser test" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
