#!/usr/bin/env bash
# Lints the contract (openapi.yaml and the schemas/*.json it references) with
# Redocly CLI, pinned so that results do not drift between machines and CI.
set -euo pipefail

REDOCLY_CLI_VERSION=2.77.0

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export npm_config_yes=true
export npm_config_cache="${npm_config_cache:-$PWD/.cache/npm}"
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false
# Redocly's usage telemetry and update check stay off in CI and on laptops alike.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true

exec npx --yes "@redocly/cli@${REDOCLY_CLI_VERSION}" lint --config .redocly.yaml openapi.yaml "$@"
