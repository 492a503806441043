#!/usr/bin/env bash
# Scale behind BENCHMARKS.md, "Scale" (issue 14), on PostgreSQL (database hangar_proof_scale
# of the machine's server, fresh per run):
#   growth:  `hangar bench throughput --jobs N` for N in SIZES (default 10^4 10^5 10^6):
#            drain rate and peak RSS of the process;
#   history: drain rate of DRAIN jobs (default 50 000) on an empty table, then with KEPT
#            finished rows (default 10^6; the issue's full run is 10^7) already in hangar_jobs
#            (completed rows of another queue, inserted with generate_series), and the ratio.
# Writes SVG bar charts to benches/plots/ (benches/svg.awk, no plotting dependency) and a
# Markdown table on stdout.
# Usage: benches/scale.sh [--sizes "10000 100000"] [--kept N] [--drain N] [--debug] > report.md
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="10000 100000 1000000"; KEPT=1000000; DRAIN=50000; PROFILE=release
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --kept) KEPT=$2; shift 2 ;;
        --drain) DRAIN=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        *) echo "usage: benches/scale.sh [--sizes \"N …\"] [--kept N] [--drain N] [--debug]" >&2; exit 2 ;;
    esac
done
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
if [ $PROFILE = release ]; then cargo build --release --quiet --bin hangar; else cargo build --quiet --bin hangar; fi
BIN="$PWD/target/$PROFILE/hangar"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export HANGAR_MASTER_KEY; HANGAR_MASTER_KEY=$("$BIN" keys generate 2>/dev/null | tail -1)
URL="$PG_BASE/hangar_proof_scale"
fresh() { psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_scale" -qAtc "CREATE DATABASE hangar_proof_scale" 2>/dev/null; HANGAR_DATABASE_URL=$URL "$BIN" migrate >/dev/null; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
throughput() {
    /usr/bin/time -f "%M" -o "$WORK/rss" env HANGAR_DATABASE_URL=$URL HANGAR_LOG=warn "$BIN" bench throughput --jobs "$1" 2>/dev/null | tail -1
}

echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: benches/scale.sh --sizes \"$SIZES\" --kept $KEPT --drain $DRAIN ($PROFILE build)"
echo
echo "| jobs drained | jobs/s | p99 enqueue→start ms | peak RSS MiB |"
echo "|---|---|---|---|"
: >"$WORK/rate"; : >"$WORK/rssplot"
for n in $SIZES; do
    fresh
    line=$(throughput "$n")
    rss=$(awk '{printf "%.0f", $1/1024}' "$WORK/rss")
    echo "| $n | **$(echo "$line" | field jobs_per_sec)** | $(echo "$line" | field p99_ms) | $rss |"
    echo "$n $(echo "$line" | field jobs_per_sec)" >>"$WORK/rate"
    echo "$n $rss" >>"$WORK/rssplot"
done
awk -v title="Drain rate vs jobs drained (PostgreSQL, $PROFILE build)" -v unit="/s" -f benches/svg.awk "$WORK/rate" > benches/plots/scale-throughput.svg
awk -v title="Peak RSS vs jobs drained (MiB)" -v unit="MiB" -f benches/svg.awk "$WORK/rssplot" > benches/plots/scale-rss.svg

echo
echo "| finished rows kept in hangar_jobs | drain rate of $DRAIN jobs, jobs/s |"
echo "|---|---|"
fresh
empty=$(throughput "$DRAIN" | field jobs_per_sec)
echo "| 0 | **$empty** |"
fresh
psql "$URL" -qAtc "INSERT INTO hangar_jobs (kind, queue, args, state, attempt, max_attempts, run_at, attempted_at, finalized_at)
    SELECT 'noop', 'history', '{}', 'completed', 1, 6, now(), now(), now() FROM generate_series(1, $KEPT)" \
    -qAtc "VACUUM ANALYZE hangar_jobs" >/dev/null
kept=$(throughput "$DRAIN" | field jobs_per_sec)
echo "| $KEPT | **$kept** ($(awk -v a="$kept" -v b="$empty" 'BEGIN {printf "%.2f", a / b}')× the empty table) |"
printf 'empty %s\nkept-%s %s\n' "$empty" "$KEPT" "$kept" | awk -v title="Drain rate: empty table vs $KEPT finished rows kept" -v unit="/s" -f benches/svg.awk > benches/plots/scale-history.svg
psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_scale" >/dev/null 2>&1
