#!/usr/bin/env bash
# Installs Debian packages quietly, for the install-*.sh scripts: sudo when
# not root, no recommends, and apt's output only when the install fails.
# Usage: scripts/install-deb.sh PACKAGE...
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq &&
       $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deb: apt-get install $* failed" >&2
  exit 1
fi
