#!/usr/bin/env bash
# Runs conntrail through the shared conntrack-logger benchmark
# (../shared/bench, see its README) at the given rates, beside any peers.
#
# usage: bench/run.sh [--rates "20000 35000"] [--duration 10] [--mode syn]
#                     [--formats "conntrack json run-ulogd-json"] [--peers "conntrack-E ..."]
#                     [--results FILE] [-- extra run.sh arguments]
# conntrail runs with its defaults (16 MiB buffer, 1 ms batch delay), writing
# to $CTB_OUT; its event subscription is NEW,DESTROY like the peers'.
# CONNTRAIL_ARGS adds options to its command line (experiments).
# Format run-ulogd-json runs the daemon (conntrail run) with a file sink in
# ulogd's JSON instead of `conntrail events` (and no flow store); run-store
# runs the daemon with its default, the SQLite flow store, and counts the
# flows stored; run-flows runs the daemon without a store, with a file sink
# of flow records (records = "flows"), and counts their lines.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${CTB_BENCH_DIR:-$ROOT/../shared/bench}
RATES="20000 35000"
DURATION=10
MODE=syn
FORMATS="conntrack json"
PEERS=""
RESULTS=/tmp/bench/conntrail-$(date +%Y%m%d-%H%M%S).jsonl
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --rates) RATES=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --formats) FORMATS=$2; shift 2 ;;
        --peers) PEERS=$2; shift 2 ;;
        --results) RESULTS=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "bench/run.sh: build first (bash scripts/install.sh)" >&2; exit 1; }
mkdir -p /tmp/bench
CLI="$ROOT/dist/src/cli/main.js"   # its shebang carries the V8 flags
for rate in $RATES; do
    for fmt in $FORMATS; do
        LOGGER="exec $CLI events -e NEW,DESTROY --format $fmt ${CONNTRAIL_ARGS:-} > \$CTB_OUT"
        case $fmt in
            conntrack) COUNT='$CTB_BENCH/lib/count-lines.sh $CTB_OUT "\[NEW\]" "\[UPDATE\]" "\[DESTROY\]"' ;;
            ulogd-json|logemu) COUNT='$CTB_BENCH/lib/count-lines.sh $CTB_OUT "ct\.event\": 1[,}]|\[NEW\]" "ct\.event\": 2[,}]|\[UPDATE\]" "ct\.event\": 4[,}]|\[DESTROY\]"' ;;
            json) COUNT='$CTB_BENCH/lib/count-lines.sh $CTB_OUT "\"event\":\"new\"" "\"event\":\"update\"" "\"event\":\"destroy\""' ;;
            vyos) COUNT='$CTB_BENCH/lib/count-lines.sh $CTB_OUT "^\[NEW\]" "^\[UPDATE\]" "^\[DESTROY\]"' ;;
            run-ulogd-json)
                # the daemon (conntrail run) with a file sink in ulogd's JSON
                LOGGER="printf '[[source]]\\nevents = [\"new\", \"destroy\"]\\n[[sink]]\\ntype = \"file\"\\npath = \"%s\"\\nformat = \"ulogd-json\"\\n[store]\\ntype = \"none\"\\n' \$CTB_OUT > \$CTB_RUN/conntrail.toml && exec $CLI run -c \$CTB_RUN/conntrail.toml"
                COUNT='$CTB_BENCH/lib/count-lines.sh $CTB_OUT "\"ct\.event\": 1[,}]" "\"ct\.event\": 2[,}]" "\"ct\.event\": 4[,}]"' ;;
            run-flows)
                # the daemon with no store and a file sink of flow records (records = "flows"):
                # one JSON line per ended flow; NEW seen = not flagged partial
                LOGGER="printf '[[source]]\\nevents = [\"new\", \"destroy\"]\\n[[sink]]\\ntype = \"file\"\\npath = \"%s\"\\nrecords = \"flows\"\\n[store]\\ntype = \"none\"\\n' \$CTB_OUT > \$CTB_RUN/conntrail.toml && exec $CLI run -c \$CTB_RUN/conntrail.toml"
                COUNT='$CTB_BENCH/lib/count-lines.sh $CTB_OUT "\"flags\":\[(\]|\"[^p])" "" "\"start_us\""' ;;
            run-store)
                # the daemon with its default: every flow into the SQLite store, no
                # line sink; counted from the store after the drain (needs sqlite3)
                LOGGER="printf '[[source]]\\nevents = [\"new\", \"destroy\"]\\n[store]\\npath = \"%s/flows.db\"\\n' \$CTB_RUN > \$CTB_RUN/conntrail.toml && exec $CLI run -c \$CTB_RUN/conntrail.toml"
                COUNT='sqlite3 $CTB_RUN/flows.db "SELECT '"'"'new='"'"' || ((SELECT count(*) FROM flows WHERE flags & 1 = 0) + (SELECT count(*) FROM open_flows WHERE flags & 1 = 0)) || '"'"' update=0 destroy='"'"' || (SELECT count(*) FROM flows)"' ;;
            *) echo "bench/run.sh: unknown format $fmt" >&2; exit 2 ;;
        esac
        "$BENCH/run.sh" --name "conntrail-$fmt" --mode "$MODE" --rate "$rate" --duration "$DURATION" \
            --logger "$LOGGER" \
            --count-cmd "$COUNT" --results "$RESULTS" "${EXTRA[@]}"
    done
done
if [ -n "$PEERS" ]; then
    "$BENCH/peers.sh" --rates "$RATES" --duration "$DURATION" --mode "$MODE" --peers "$PEERS" --results "$RESULTS" -- "${EXTRA[@]}"
fi
python3 "$BENCH/lib/report.py" "$RESULTS"
