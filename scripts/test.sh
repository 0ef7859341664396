#!/usr/bin/env bash
# The one test command (README, .ci/run): installs and starts what is missing
# (Redis, versitygw, ffmpeg, Chromium), then runs gofmt, go vet, the OpenAPI
# lint, the Zapier app's tests and go test -race over every package against
# the real components.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
GOTESTSUM_VERSION=v1.13.0
export PATH="$PATH:$(go env GOPATH)/bin"

log() { printf '\n== %s\n' "$*"; }

log "Redis"
if ! command -v redis-server >/dev/null 2>&1; then
  scripts/install-deb.sh redis-server redis-tools
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

# go install leaves no version in the binary, so a stamp file beside it
# records which version was installed.
install_tool() { # name module version
  local bin stamp
  bin="$(go env GOPATH)/bin/$1"
  stamp="$bin.version"
  if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$3" ]; then
    go install "$2@$3"
    echo "$3" > "$stamp"
  fi
  echo "$1 $3"
}

log "versitygw (S3-compatible server for the storage tests)"
install_tool versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"

log "gotestsum (test runner with a summary)"
install_tool gotestsum gotest.tools/gotestsum "$GOTESTSUM_VERSION"

log "ffmpeg (media probing and renditions)"
scripts/install-ffmpeg.sh
ffmpeg -version | sed -n 1p

log "Chromium (plays renditions in <audio> and <video>)"
scripts/install-chromium.sh
chromium --version 2>/dev/null || true

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "ok"

log "go vet"
go vet ./...
echo "ok"

log "OpenAPI lint (redocly)"
scripts/lint-openapi.sh

log "Zapier app (connectors/zapier, Node 22) against a real chatvault"
scripts/test-zapier.sh

log "go test -race"
# Packages share one Redis but use separate key prefixes, so they run in
# parallel. gotestsum prints go test's output and a closing summary.
# CI makes the browser and ffmpeg tests fail, not skip, when a tool is missing.
CI="${CI:-1}" gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg -- -race -count=1 -timeout 15m "$@" ./...
