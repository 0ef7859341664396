#!/usr/bin/env bash
# The one test command (README, .ci/run): installs and starts what is missing
# (Redis, versitygw), then runs gofmt, go vet, the OpenAPI lint and
# go test -race over every package against the real components.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
GOTESTSUM_VERSION=v1.13.0
export PATH="$PATH:$(go env GOPATH)/bin"

log() { printf '\n== %s\n' "$*"; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

log "Redis"
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server redis-tools
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

log "versitygw (S3-compatible server for the storage tests)"
if ! versitygw --version 2>/dev/null | grep -q "${VERSITYGW_VERSION#v}"; then
  go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
fi
versitygw --version | head -1

log "gotestsum (test runner with a summary)"
if ! gotestsum --version 2>/dev/null | grep -q "${GOTESTSUM_VERSION#v}"; then
  go install "gotest.tools/gotestsum@${GOTESTSUM_VERSION}"
fi
gotestsum --version

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

log "go test -race"
# Packages share one Redis but use separate key prefixes, so they run in
# parallel. gotestsum prints go test's output and a closing summary.
gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg -- -race -count=1 -timeout 15m "$@" ./...
