#!/usr/bin/env bash
# Installs Debian's chromium when no Chromium is on PATH (internal/browsertest
# plays renditions in it). Idempotent and quiet: it prints nothing when one is
# there (chromium, chromium-browser, google-chrome or $CHATVAULT_CHROMIUM),
# and apt's output only when the install fails.
set -euo pipefail

have_chromium() {
  if [ -n "${CHATVAULT_CHROMIUM:-}" ] && [ -x "$CHATVAULT_CHROMIUM" ]; then
    return 0
  fi
  command -v chromium >/dev/null 2>&1 ||
    command -v chromium-browser >/dev/null 2>&1 ||
    command -v google-chrome >/dev/null 2>&1
}

if have_chromium; then
  exit 0
fi

"$(dirname "$0")/install-deb.sh" chromium

if ! have_chromium; then
  echo "install-chromium: chromium still missing after the install" >&2
  exit 1
fi
