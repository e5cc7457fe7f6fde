#!/usr/bin/env bash
# How often `[USERSPACE] ... progname=NAME` names the process behind an event
# that a short-lived process caused: N pairs of `conntrack -I` / `conntrack -D`
# (each its own process, gone right after the kernel's answer) in a namespace
# of their own, watched at once by `conntrack -E` (inside it) and by
# `conntrail events` (inside it, or with MODE=netns from outside, --netns).
#
#   bench/progname.sh            N=150 pairs (300 events)
#   N=300 MODE=netns bench/progname.sh
#
# Prints the events each saw and how many of them name a process. The name
# is a race against the process's exit for both: compare the two counts of
# one run, not runs with each other.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-150}"
MODE="${MODE:-inside}"
CONNTRAIL="${CONNTRAIL:-$PWD/dist/src/cli/main.js}"
NS="ctprog$$"
OUT="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" conntrack -E >>"$OUT/ref" 2>/dev/null & pids+=($!)
if [ "$MODE" = netns ]; then
  "$CONNTRAIL" events --netns "$NS" >>"$OUT/ours" 2>"$OUT/ours.err" & pids+=($!)
else
  ip netns exec "$NS" "$CONNTRAIL" events >>"$OUT/ours" 2>"$OUT/ours.err" & pids+=($!)
fi
# both subscribed: an entry made now is seen by both (bounded: 30 s)
for _ in $(seq 1 300); do
  ip netns exec "$NS" conntrack -I -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1 --dport 1 -t 5 >/dev/null 2>&1 || true
  ip netns exec "$NS" conntrack -D -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1 --dport 1 >/dev/null 2>&1 || true
  if grep -q 'sport=1 ' "$OUT/ref" && grep -q 'sport=1 ' "$OUT/ours"; then break; fi
  sleep 0.1
done
: >"$OUT/ref"; : >"$OUT/ours"
for i in $(seq 1 "$N"); do
  ip netns exec "$NS" conntrack -I -p udp -s 10.0.0.1 -d 10.0.0.2 --sport $((1000 + i)) --dport 53 -t 30 >/dev/null 2>&1
  ip netns exec "$NS" conntrack -D -p udp -s 10.0.0.1 -d 10.0.0.2 --sport $((1000 + i)) --dport 53 >/dev/null 2>&1
done
# until both have printed every event (bounded: 10 s)
for _ in $(seq 1 100); do
  [ "$(grep -c 'dport=53 ' "$OUT/ref")" -ge $((2 * N)) ] && [ "$(grep -c 'dport=53 ' "$OUT/ours")" -ge $((2 * N)) ] && break
  sleep 0.1
done
echo "mode=$MODE pairs=$N"
echo "conntrack -E:    $(grep -c 'dport=53 .*USERSPACE' "$OUT/ref") events, $(grep -c 'dport=53 .*progname=' "$OUT/ref") named"
echo "conntrail events: $(grep -c 'dport=53 .*USERSPACE' "$OUT/ours") events, $(grep -c 'dport=53 .*progname=' "$OUT/ours") named"
