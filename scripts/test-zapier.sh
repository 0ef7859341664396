#!/usr/bin/env bash
# Tests the Zapier app (connectors/zapier) with Node 22, the version Zapier
# runs, against a real chatvault built from this repository and real Redis.
# Node 22 comes from the npm registry (the `node` devDependency), so the
# machine's own node and npm are only needed to bootstrap `npm ci`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
APP=connectors/zapier

export npm_config_cache="${npm_config_cache:-$ROOT/.cache/npm}"
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false
export npm_config_yes=true

log() { printf '\n== %s\n' "$*"; }

log "npm (bootstrap)"
if ! command -v npm >/dev/null 2>&1; then
  scripts/install-deb.sh nodejs npm
fi
npm --version

log "npm ci ($APP)"
# npm ci starts from scratch each time; a stamp of the lock file skips it
# when node_modules already matches.
stamp="$APP/node_modules/.chatvault-lock.sha256"
want=$(sha256sum "$APP/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$APP/node_modules/.bin/node" ]; then
  (cd "$APP" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
else
  echo "node_modules matches package-lock.json"
fi

log "Node 22"
NODE="$ROOT/$APP/node_modules/.bin/node"
node_version=$("$NODE" --version 2>/dev/null || true)
if [[ "$node_version" != v22.* ]]; then
  # The node package installs its binary in a preinstall script; fetch it
  # again if that script did not run.
  (cd "$APP" && npm install --no-save --allow-scripts=node "node@$(node -p "require('./package.json').devDependencies.node")" --loglevel=error)
  node_version=$("$NODE" --version)
fi
[[ "$node_version" == v22.* ]] || { echo "expected Node 22, got $node_version"; exit 1; }
echo "$node_version"

log "Redis"
if [ -z "${REDIS_URL:-}" ]; then
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
else
  echo "using REDIS_URL"
fi

log "go build (the service the tests start)"
mkdir -p .cache/zapier-test
go build -o .cache/zapier-test/chatvault .
export CHATVAULT_BIN="$ROOT/.cache/zapier-test/chatvault"
echo "ok"

log "node --test ($APP)"
cd "$APP"
NODE_ENV=test exec "$NODE" --test --test-concurrency=1 --test-timeout=240000 --test-reporter=spec "test/*.test.js"
