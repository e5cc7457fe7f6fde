#!/usr/bin/env bash
# Installs everything the tests need (Debian packages: the real peers and
# traffic tools; npm dependencies; the addon) and runs the whole suite:
# unit tests, then end-to-end tests in network namespaces (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the end-to-end tests create network namespaces and nftables rules: run as root" >&2
  exit 1
fi

pkgs=(conntrack ulogd2 ulogd2-json nftables iproute2 ncat iputils-ping python3 python3-pyroute2 g++ make util-linux procps postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/install.sh
# conntrack events need the netlink module (autoloaded on most kernels)
modprobe nf_conntrack_netlink 2>/dev/null || true

# the daemon's default flow store goes to $STATE_DIRECTORY (as under
# systemd), here a directory of the test run's own
STATE_DIRECTORY="$(mktemp -d /tmp/conntrail-state-XXXXXX)"
export STATE_DIRECTORY
trap 'rm -rf "$STATE_DIRECTORY"' EXIT

node --test --test-concurrency=1 dist/test/unit/ dist/test/e2e/
