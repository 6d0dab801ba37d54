#!/usr/bin/env bash
# Creates .venv and installs the project with its development tools (idempotent); the browser tests of the
# admin panel need Debian's `chromium`, installed here when missing (as root, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (for the panel's browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is missing; the browser tests are skipped (as root: apt-get install -y chromium)" >&2
  fi
fi
