#!/usr/bin/env bash
# Scale behind BENCHMARKS.md, "Scale" (issue 14), on PostgreSQL (database hangar_proof_scale
# of the machine's server, fresh per run):
#   growth:  `hangar bench throughput --jobs N` for N in SIZES (default 10^4 10^5 10^6):
#            drain rate and peak RSS of the process;
#   history: drain rate of DRAIN jobs (default 50 000) on an empty table, then with KEPT
#            finished rows (default 10^6; the issue's full run is 10^7) already in hangar_jobs
#            (completed rows of another queue, inserted with generate_series), and the ratio;
#   procs:   for J in PROC_JOBS (default 10^4 10^5 10^6) and P in PROCS (default 1 2 4): J
#            noop jobs inserted first (generate_series, one statement), then P `hangar worker`
#            processes (one pool "scale", concurrency 100) drain them: total rate (first claim
#            to last completion, the database's clock), each process's share (its
#            `leased_by`) and peak RSS (VmHWM), RSS of each sampled every second.
# Writes SVG charts to benches/plots/ (benches/svg*.awk, no plotting dependency) and
# Markdown tables on stdout.
# Usage: benches/scale.sh [--parts "growth history procs"] [--sizes "10000 100000"] [--kept N]
#            [--drain N] [--procs "1 2 4"] [--proc-jobs "10000 100000"] [--debug] > report.md
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="10000 100000 1000000"; KEPT=1000000; DRAIN=50000; PROFILE=release
PARTS="growth history procs"; PROCS="1 2 4"; PROC_JOBS="10000 100000 1000000"
while [ $# -gt 0 ]; do
    case "$1" in
        --parts) PARTS=$2; shift 2 ;;
        --procs) PROCS=$2; shift 2 ;;
        --proc-jobs) PROC_JOBS=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        --kept) KEPT=$2; shift 2 ;;
        --drain) DRAIN=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        *) echo "usage: benches/scale.sh [--parts \"growth history procs\"] [--sizes \"N …\"] [--kept N] [--drain N] [--procs \"1 2 4\"] [--proc-jobs \"N …\"] [--debug]" >&2; exit 2 ;;
    esac
done
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
if [ $PROFILE = release ]; then cargo build --release --quiet --bin hangar; else cargo build --quiet --bin hangar; fi
BIN="$PWD/target/$PROFILE/hangar"
WORK=$(mktemp -d)
WORKERS=()
cleanup() {
    for pid in "${WORKERS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_scale" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
has() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
export HANGAR_MASTER_KEY; HANGAR_MASTER_KEY=$("$BIN" keys generate 2>/dev/null | tail -1)
URL="$PG_BASE/hangar_proof_scale"
fresh() { psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_scale" -qAtc "CREATE DATABASE hangar_proof_scale" 2>/dev/null; HANGAR_DATABASE_URL=$URL "$BIN" migrate >/dev/null; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
throughput() {
    /usr/bin/time -f "%M" -o "$WORK/rss" env HANGAR_DATABASE_URL=$URL HANGAR_LOG=warn "$BIN" bench throughput --jobs "$1" 2>/dev/null | tail -1
}

echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: benches/scale.sh --parts \"$PARTS\" --sizes \"$SIZES\" --kept $KEPT --drain $DRAIN --procs \"$PROCS\" --proc-jobs \"$PROC_JOBS\" ($PROFILE build)"
if has growth; then
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
fi

if has history; then
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
fi

if has procs; then
mkdir -p "$WORK/pools"
printf '[[pool]]\nname = "scale"\nqueue = "scale"\nkinds = ["noop"]\nconcurrency = 100\nbatch_size = 500\n' >"$WORK/pools/scale.toml"
echo
echo "| jobs | worker processes | total jobs/s | per process jobs/s (each: its jobs / the drain's time) | peak RSS per process MiB | load avg |"
echo "|---|---|---|---|---|---|"
: >"$WORK/procs"; : >"$WORK/rss-over-time"
for n in $PROC_JOBS; do
    for p in $PROCS; do
        fresh
        psql "$URL" -qAtc "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, run_at)
            SELECT 'noop', 'scale', '{}', 'available', 6, now() FROM generate_series(1, $n)" \
            -qAtc "VACUUM ANALYZE hangar_jobs" >/dev/null
        WORKERS=()
        for i in $(seq "$p"); do
            HANGAR_DATABASE_URL=$URL HANGAR_LOG=warn "$BIN" worker --pool scale --workers-dir "$WORK/pools" \
                --bind 127.0.0.1:0 2>"$WORK/worker-$i.log" &
            WORKERS+=($!)
        done
        t0=$(date +%s.%N); : >"$WORK/samples"
        while :; do
            sleep 1
            t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
            for i in $(seq "$p"); do
                awk -v w="worker-$i" -v t="$t" '/VmRSS/ {printf "%s %s %.1f\n", w, t, $2 / 1024}' "/proc/${WORKERS[$((i - 1))]}/status" >>"$WORK/samples" 2>/dev/null || true
            done
            left=$(psql "$URL" -qAtc "SELECT count(*) FROM hangar_jobs WHERE state <> 'completed'")
            [ "$left" -eq 0 ] && break
            for pid in "${WORKERS[@]}"; do
                kill -0 "$pid" 2>/dev/null || { echo "a worker exited early; its log:" >&2; cat "$WORK"/worker-*.log >&2; exit 1; }
            done
        done
        peak=()
        for i in $(seq "$p"); do
            peak+=("$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/${WORKERS[$((i - 1))]}/status")")
        done
        for pid in "${WORKERS[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${WORKERS[@]}"; do wait "$pid" 2>/dev/null || true; done
        WORKERS=()
        secs=$(psql "$URL" -qAtc "SELECT extract(epoch FROM max(finalized_at) - min(attempted_at)) FROM hangar_jobs")
        total=$(awk -v n="$n" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
        each=$(psql "$URL" -qAtc "SELECT string_agg(round(c / $secs)::text, ' / ' ORDER BY c DESC) FROM
            (SELECT count(*) AS c FROM hangar_jobs GROUP BY leased_by) t")
        echo "| $n | $p | **$total** | $each | $(IFS=/; echo "${peak[*]}" | sed 's|/| / |g') | $(cut -d' ' -f1 /proc/loadavg) |"
        echo "$n $p $total" >>"$WORK/procs"
        # RSS over time: kept for the largest run with the most processes (the last one).
        cp "$WORK/samples" "$WORK/rss-over-time"; rss_label="$n jobs, $p processes"
    done
done
# Pivot "jobs procs rate" into one group per process count, one bar per job count.
series=$(for n in $PROC_JOBS; do printf '%s jobs,' "$n"; done)
awk '{ r[$2, $1] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } if (!($1 in js)) { js[$1] = 1; jobs[++m] = $1 } }
     END { for (i = 1; i <= k; i++) { line = order[i] "-proc"; for (j = 1; j <= m; j++) line = line " " r[order[i], jobs[j]]; print line } }' "$WORK/procs" |
    awk -v title="Total drain rate vs worker processes, jobs/s ($PROFILE build)" -v unit="" -v series="${series%,}" -f benches/svg-groups.awk > benches/plots/scale-processes.svg
awk '{ r[$2, $1] = $3 / $2; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } if (!($1 in js)) { js[$1] = 1; jobs[++m] = $1 } }
     END { for (i = 1; i <= k; i++) { line = order[i] "-proc"; for (j = 1; j <= m; j++) line = line " " int(r[order[i], jobs[j]] + 0.5); print line } }' "$WORK/procs" |
    awk -v title="Drain rate per worker process, jobs/s ($PROFILE build)" -v unit="" -v series="${series%,}" -f benches/svg-groups.awk > benches/plots/scale-per-process.svg
awk -v title="Worker RSS during a drain ($rss_label), sampled every second" -v xunit="s" -v yunit="MiB" -f benches/svg-lines.awk "$WORK/rss-over-time" > benches/plots/scale-rss-over-time.svg
fi
