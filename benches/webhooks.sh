#!/usr/bin/env bash
# The webhook benchmark behind BENCHMARKS.md ("Outbound webhooks"). Release build; each run on
# a fresh database (PostgreSQL: a new database; SQLite: a new file):
#   `hangar bench webhooks --events 2000 --endpoints 10`: 20 000 signed, logged deliveries
#   from stored events to a receiver on loopback, against the raw rate of the same HTTP client
#   sending the same signed requests with the same concurrency (no database), in one run;
#   then 200 events one at a time, 20 ms apart: ingress -> first attempt; then ten healthy
#   endpoints against nine healthy beside one dead (never answering) at the same rate.
# 3 runs per backend, medians. Prints a Markdown table on stdout.
# Usage: benches/webhooks.sh [--quick] > report.md   (HANGAR_BIN=path: that binary, no build;
#   CONCURRENCY=n: n deliveries in flight, the pool's and the raw client's, instead of the
#   built-in pool's concurrency)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3; EVENTS=2000; LAT=200
EXTRA=(); if [ -n "${CONCURRENCY:-}" ]; then EXTRA=(--concurrency "$CONCURRENCY"); fi
if [ "${1:-}" = "--quick" ]; then RUNS=1; EVENTS=500; LAT=50; fi
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
if [ -n "${HANGAR_BIN:-}" ]; then BIN="$HANGAR_BIN"; else
    cargo build --release --quiet --bin hangar
    BIN="$PWD/target/release/hangar"
fi
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
fresh_pg() { psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_bench_wh" -qAtc "CREATE DATABASE hangar_bench_wh"; echo "$PG_BASE/hangar_bench_wh"; }
fresh_sqlite() { rm -f "$WORK"/bench.db*; echo "sqlite://$WORK/bench.db"; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r)"
echo "- command: ${CONCURRENCY:+CONCURRENCY=$CONCURRENCY }benches/webhooks.sh $*; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| backend | in flight | logged deliveries/s | raw HTTP/s | ratio | ingress -> 1st attempt p50 / p99 ms | healthy p99 ms: 10 healthy / 9 beside a dead one |"
echo "|---|---|---|---|---|---|---|"
for backend in postgres sqlite; do
    declare -A col=()
    for key in in_flight deliveries_per_sec raw_per_sec ratio ingress_p50_ms ingress_p99_ms healthy_p99_ms beside_dead_p99_ms; do col[$key]=""; done
    for _ in $(seq "$RUNS"); do
        if [ $backend = postgres ]; then url=$(fresh_pg); else url=$(fresh_sqlite); fi
        line=$(HANGAR_DATABASE_URL=$url "$BIN" bench webhooks --events "$EVENTS" --latency-events "$LAT" "${EXTRA[@]}" 2>"$WORK/err" | tail -1)
        for key in "${!col[@]}"; do col[$key]+="$(echo "$line" | field "$key") "; done
    done
    m() { echo "${col[$1]}" | tr ' ' '\n' | sed '/^$/d' | median; }
    echo "| $backend | $(m in_flight) | **$(m deliveries_per_sec)** | $(m raw_per_sec) | $(m ratio) | $(m ingress_p50_ms) / $(m ingress_p99_ms) | $(m healthy_p99_ms) / $(m beside_dead_p99_ms) |"
    unset col
done
