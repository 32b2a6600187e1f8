#!/usr/bin/env bash
# Installs what jobbridge needs to build, test and run locally on Debian 12 (run as root; with
# sudo otherwise). Does nothing when everything is already there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      librabbitmq-dev libjansson-dev uuid-dev libpq-dev libcriterion-dev
      rabbitmq-server postgresql postgresql-client amqp-tools python3 python3-pika
      clang libclang-rt-14-dev gnuplot-nox procps
      clang-format cppcheck # tests/check_style.sh: the format and static-analysis gates
      nftables # nft: pgproxy's black hole drops a connection's packets (test_silent_cut.py)
      libmicrohttpd-dev # the HTTP face (src/http/), with GnuTLS for HTTPS
      libcurl4-openssl-dev libsystemd-dev # the http handler; sd_notify under systemd
      curl openssl wrk prometheus # real clients in the tests; promtool checks /metrics
      python3-requests python3-jsonschema python3-croniter # API tests, OpenAPI schemas, cron
      python3-yaml # tests/deploy: the compose and Kubernetes files parsed and checked
      chromium nodejs npm) # tests/browser: the dashboard in Debian's chromium (playwright-core)
missing=()
for p in "${pkgs[@]}"; do
  # Node.js from elsewhere (NodeSource's nodejs bundles npm, and conflicts with Debian's npm).
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# tests/browser's playwright-core, exactly as its lock file says (npm ci; no browser download:
# the tests drive Debian's /usr/bin/chromium).
browser_deps() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  [ -d "$dir/node_modules/playwright-core" ] ||
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
}
[ ${#missing[@]} -eq 0 ] && { browser_deps; exit 0; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The Debian packages start their system-wide servers via policy-rc.d where an init exists;
# we never use those: every script starts its own throwaway servers.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
browser_deps
