#!/usr/bin/env bash
# The benchmark protocol behind BENCHMARKS.md. Release build; every run on a fresh database
# (PostgreSQL: a new database; SQLite: a new file), so no run inherits another's dead rows.
#   throughput: 50 000 noop jobs, enqueued first, then drained, default concurrency (100),
#               5 runs, median;
#   latency:    1 000 noop jobs one at a time, 20 ms apart, into an idle pool, 3 runs, median
#               of each percentile;
#   ingress:    Redis ingress (`hangar bench ingress`): a 50 000-entry backlog drained by one
#               consumer (XADD to committed job), then 500 entries one at a time 20 ms apart,
#               3 runs per backend, medians;
#   planner:    `hangar bench planner --schedules 100000`, one run per backend (it takes over a
#               minute: the schedules' first due times are spread over one minute);
#   memory:     peak RSS of draining 1 000 000 jobs (PostgreSQL), and `hangar serve` idle;
#   compare:    graphile-worker and BullMQ with the same protocol (benches/compare), when
#               Node is installed, in the same run.
# Prints a Markdown report on stdout and plots it (benches/engines-plots.sh: per-engine latency
# and drain rate in benches/plots/). Usage: benches/run.sh [--quick] > report.md
# (SKIP_COMPARE=1 leaves out the other engines.)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5; LAT_RUNS=3; JOBS=50000; LAT_JOBS=1000; BIG=1000000; ING_RUNS=3; ING_ENTRIES=50000; SCHEDULES=100000
if [ "${1:-}" = "--quick" ]; then RUNS=1; LAT_RUNS=1; JOBS=10000; LAT_JOBS=200; BIG=0; ING_RUNS=1; ING_ENTRIES=10000; SCHEDULES=10000; fi
export HANGAR_REDIS_URL="${HANGAR_REDIS_URL:-redis://127.0.0.1:6379}"
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
cargo build --release --quiet
BIN="$PWD/target/release/hangar"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

fresh_pg() { psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_bench" -qAtc "CREATE DATABASE hangar_bench"; echo "$PG_BASE/hangar_bench"; }
fresh_sqlite() { rm -f "$WORK"/bench.db*; echo "sqlite://$WORK/bench.db"; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Runs a command under /usr/bin/time; prints its last stdout line then "rss_mib=N".
measured() {
    /usr/bin/time -f "%M" -o "$WORK/rss" "$@" 2>"$WORK/err" | tail -1
    echo "rss_mib=$(awk '{printf "%.1f", $1/1024}' "$WORK/rss")"
}

# The whole report, printed and kept for the plots at the end.
report() {

echo "# Hangar benchmark run"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r)"
echo "- PostgreSQL: $(psql "$PG_ADMIN" -qAtc 'show server_version'), synchronous_commit=$(psql "$PG_ADMIN" -qAtc 'show synchronous_commit'), same machine"
echo "- SQLite: bundled with sqlx, WAL, synchronous=FULL"
echo "- command: benches/run.sh $*"
echo
echo "| system | backend | jobs/s (median of $RUNS) | runs | enqueue-to-start p50 / p99 ms | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for backend in postgres sqlite; do
    rates=(); lines=()
    for _ in $(seq "$RUNS"); do
        if [ $backend = postgres ]; then url=$(fresh_pg); else url=$(fresh_sqlite); fi
        out=$(HANGAR_DATABASE_URL=$url measured "$BIN" bench throughput --jobs "$JOBS")
        rates+=("$(echo "$out" | head -1 | field jobs_per_sec)"); lines+=("$out")
    done
    med=$(printf '%s\n' "${rates[@]}" | median)
    last=${lines[-1]}
    echo "| hangar | $backend | **$med** | ${rates[*]} | $(echo "$last" | head -1 | field p50_ms) / $(echo "$last" | head -1 | field p99_ms) | $(echo "$last" | tail -1 | field rss_mib) |"
done
COMPARE=benches/compare
if [ -z "${SKIP_COMPARE:-}" ] && command -v node >/dev/null 2>&1 && [ -f $COMPARE/package.json ]; then
    (cd $COMPARE && npm ci --silent --no-audit --no-fund >/dev/null 2>&1 || npm install --silent --no-audit --no-fund >/dev/null)
    for mode in "graphile.mjs throughput --batched" "graphile.mjs throughput" "bullmq.mjs throughput"; do
        rates=()
        for _ in $(seq "$RUNS"); do
            out=$(cd $COMPARE && DATABASE_URL="$PG_BASE/compare_graphile" REDIS_URL="${HANGAR_TEST_REDIS_URL:-redis://127.0.0.1:6379}" node $mode --jobs "$JOBS" 2>/dev/null | tail -1 || true)
            rates+=("$(echo "$out" | field jobs_per_sec)")
        done
        echo "| ${mode%% *} ${mode#* throughput} | $([[ $mode == bullmq* ]] && echo redis || echo postgres) | **$(printf '%s\n' "${rates[@]}" | median)** | ${rates[*]} | $(echo "$out" | field p50_ms) / $(echo "$out" | field p99_ms) | |"
    done
fi
echo
echo "| system | backend | p50 ms | p99 ms | max ms (medians of $LAT_RUNS runs of $LAT_JOBS jobs, 20 ms apart) |"
echo "|---|---|---|---|---|"
for backend in postgres sqlite; do
    p50s=(); p99s=(); maxs=()
    for _ in $(seq "$LAT_RUNS"); do
        if [ $backend = postgres ]; then url=$(fresh_pg); else url=$(fresh_sqlite); fi
        out=$(HANGAR_DATABASE_URL=$url "$BIN" bench latency --jobs "$LAT_JOBS" 2>/dev/null | tail -1)
        p50s+=("$(echo "$out" | field p50_ms)"); p99s+=("$(echo "$out" | field p99_ms)"); maxs+=("$(echo "$out" | field max_ms)")
    done
    echo "| hangar | $backend | $(printf '%s\n' "${p50s[@]}" | median) | **$(printf '%s\n' "${p99s[@]}" | median)** | $(printf '%s\n' "${maxs[@]}" | median) |"
done
if [ -z "${SKIP_COMPARE:-}" ] && command -v node >/dev/null 2>&1 && [ -f $COMPARE/package.json ]; then
    for tool in graphile bullmq; do
        p50s=(); p99s=(); maxs=()
        for _ in $(seq "$LAT_RUNS"); do
            out=$(cd $COMPARE && DATABASE_URL="$PG_BASE/compare_graphile" REDIS_URL="${HANGAR_TEST_REDIS_URL:-redis://127.0.0.1:6379}" node $tool.mjs latency --jobs "$LAT_JOBS" --interval-ms 20 2>/dev/null | tail -1 || true)
            p50s+=("$(echo "$out" | field p50_ms)"); p99s+=("$(echo "$out" | field p99_ms)"); maxs+=("$(echo "$out" | field max_ms)")
        done
        echo "| $tool | $([ $tool = bullmq ] && echo redis || echo postgres) | $(printf '%s\n' "${p50s[@]}" | median) | **$(printf '%s\n' "${p99s[@]}" | median)** | $(printf '%s\n' "${maxs[@]}" | median) |"
    done
fi
echo
echo "| Redis ingress | backend | entries/s XADD → committed (median of $ING_RUNS) | runs | p50 ms | p99 ms | max ms (500 entries, 20 ms apart) |"
echo "|---|---|---|---|---|---|---|"
for backend in postgres sqlite; do
    rates=(); p50s=(); p99s=(); maxs=()
    for _ in $(seq "$ING_RUNS"); do
        if [ $backend = postgres ]; then url=$(fresh_pg); else url=$(fresh_sqlite); fi
        out=$(HANGAR_DATABASE_URL=$url "$BIN" bench ingress --entries "$ING_ENTRIES" --latency-entries 500 2>/dev/null | tail -1)
        rates+=("$(echo "$out" | field entries_per_sec)"); p50s+=("$(echo "$out" | field p50_ms)")
        p99s+=("$(echo "$out" | field p99_ms)"); maxs+=("$(echo "$out" | field max_ms)")
    done
    echo "| hangar | $backend | **$(printf '%s\n' "${rates[@]}" | median)** | ${rates[*]} | $(printf '%s\n' "${p50s[@]}" | median) | **$(printf '%s\n' "${p99s[@]}" | median)** | $(printf '%s\n' "${maxs[@]}" | median) |"
done
echo
echo "| planner | backend | schedules | planned/s, all due at once | lateness p99 ms | max ms (first due times spread over a minute) |"
echo "|---|---|---|---|---|---|"
for backend in postgres sqlite; do
    if [ $backend = postgres ]; then url=$(fresh_pg); else url=$(fresh_sqlite); fi
    out=$(HANGAR_DATABASE_URL=$url HANGAR_LOG=warn "$BIN" bench planner --schedules "$SCHEDULES" 2>/dev/null | tail -1)
    echo "| hangar | $backend | $SCHEDULES | **$(echo "$out" | field schedules_per_sec)** | $(echo "$out" | field lateness_p99_ms) | $(echo "$out" | field max_lateness_ms) |"
done
echo
if [ "$BIG" -gt 0 ]; then
    url=$(fresh_pg)
    out=$(HANGAR_DATABASE_URL=$url measured "$BIN" bench throughput --jobs "$BIG" --concurrency 50)
    echo "- draining $BIG jobs on PostgreSQL at the default pool concurrency (50): $(echo "$out" | head -1 | field jobs_per_sec) jobs/s, peak RSS $(echo "$out" | tail -1 | field rss_mib) MiB"
fi
url=$(fresh_sqlite); port=$((20000 + RANDOM % 20000))
HANGAR_DATABASE_URL=$url "$BIN" serve --bind 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
sleep 5
echo "- \`hangar serve\` idle on SQLite after 5 s: RSS $(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status) MiB"
kill "$pid"
psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_bench" >/dev/null
}
report | tee "$WORK/report.md"
benches/engines-plots.sh "$WORK/report.md" >&2
