#!/usr/bin/env bash
# Installs Debian's prometheus (prometheus + promtool) and victoria-metrics (vmagent) when they are
# missing and we may (root). Never fails the build: tests that need a peer skip with a reason.
set -u
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v vmagent >/dev/null 2>&1 || need+=(victoria-metrics)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "peers: ${need[*]} missing and not root: peer tests will be skipped"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${need[@]}" >/tmp/tidemark-peers.log 2>&1 ||
  { apt-get update >>/tmp/tidemark-peers.log 2>&1 &&
    apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/tidemark-peers.log 2>&1; } ||
  echo "peers: could not install ${need[*]} (see /tmp/tidemark-peers.log): peer tests will be skipped"
# The Debian package may start a system prometheus on :9090; tests start their own on loopback.
pkill -x prometheus >/dev/null 2>&1 || true
exit 0
