#!/usr/bin/env bash
# Installs ffmpeg and ffprobe from Debian's packages when either is missing
# (internal/transcode runs them). Idempotent and quiet: it prints nothing
# when both are on PATH, and apt's output only when the install fails.
set -euo pipefail

if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  exit 0
fi

"$(dirname "$0")/install-deb.sh" ffmpeg

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "install-ffmpeg: ffmpeg or ffprobe still missing after the install" >&2
  exit 1
fi
