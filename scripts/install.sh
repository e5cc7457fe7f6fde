#!/usr/bin/env bash
# Installs what conntrail needs to build and run on Debian (as root): a C++
# toolchain for the native addon, then the npm dependencies; builds the
# addon (node-gyp, against the installed Node's headers) and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in g++ make python3; do
  command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${missing[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make python3 >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  echo "install.sh: Node.js >= 20.19 is needed (apt-get install nodejs npm, or your distribution's Node 20+)" >&2
  exit 1
fi
# Build the addon against this Node's own headers when they are installed
# (no header download).
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi
npm ci --no-audit --no-fund
