#!/usr/bin/env bash
# A/B of two hangar release binaries in one run, interleaved (A, B, A, B, …) so that a change
# of the machine's speed during the run hits both alike. The protocol is benches/run.sh's:
#   throughput: 50 000 noop jobs enqueued, then drained at the default concurrency; RUNS runs
#               per binary and backend, each on a fresh database; median jobs/s;
#   latency:    1 000 noop jobs one at a time, 20 ms apart, into an idle pool; median p50/p99;
#   ingress:    `bench ingress` (50 000-entry backlog, then 500 entries 20 ms apart), median.
# Usage: benches/ab.sh OLD_BINARY NEW_BINARY [RUNS] > report.md
# MEASURES="ingress" (or any of "drain latency ingress") runs only those, e.g. more runs of
# one measure on a noisy machine.
# (build the old one from a worktree: git worktree add ../base REV && cargo build --release)
set -euo pipefail
A=$1; B=$2; RUNS=${3:-3}
GIVEN=${MEASURES:+MEASURES=\"$MEASURES\" }
MEASURES=${MEASURES:-drain latency ingress}
wants() { [[ " $MEASURES " == *" $1 "* ]]; }
export HANGAR_REDIS_URL="${HANGAR_REDIS_URL:-redis://127.0.0.1:6379}"
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
fresh() {
    if [ "$1" = postgres ]; then
        psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_ab" -qAtc "CREATE DATABASE hangar_ab"
        echo "$PG_BASE/hangar_ab"
    else
        rm -f "$WORK"/ab.db*; echo "sqlite://$WORK/ab.db"
    fi
}
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# run BIN BACKEND ARGS…: the last line of `BIN ARGS…` on a fresh database (from its own folder,
# so no workers/ or schedules/ folder of the caller's changes what it runs).
run() {
    local bin=$1 backend=$2; shift 2
    (cd "$WORK" && HANGAR_DATABASE_URL=$(fresh "$backend") HANGAR_LOG=warn "$bin" "$@" 2>/dev/null | tail -1)
}

echo "# A/B: $(basename "$(dirname "$(dirname "$(dirname "$A")")")") vs $(basename "$(dirname "$(dirname "$(dirname "$B")")")")"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r)"
echo "- A: $A"
echo "- B: $B"
echo "- command: ${GIVEN}benches/ab.sh $*"
echo
echo "| measure | backend | A (median of $RUNS) | B (median of $RUNS) | B / A | A runs | B runs |"
echo "|---|---|---|---|---|---|---|"
for backend in postgres sqlite; do
    declare -A got=()
    for _ in $(seq "$RUNS"); do
        for side in A B; do
            bin=${!side}
            if wants drain; then
                out=$(run "$bin" "$backend" bench throughput --jobs 50000)
                got[$side,tp]+="$(echo "$out" | field jobs_per_sec) "
            fi
            if wants latency; then
                out=$(run "$bin" "$backend" bench latency --jobs 1000)
                got[$side,p50]+="$(echo "$out" | field p50_ms) "
                got[$side,p99]+="$(echo "$out" | field p99_ms) "
            fi
            if wants ingress; then
                out=$(run "$bin" "$backend" bench ingress --entries 50000 --latency-entries 500)
                got[$side,ing]+="$(echo "$out" | field entries_per_sec) "
                got[$side,ip99]+="$(echo "$out" | field p99_ms) "
            fi
        done
    done
    for m in "tp:drain jobs/s" "p50:idle latency p50 ms" "p99:idle latency p99 ms" "ing:ingress entries/s" "ip99:ingress p99 ms"; do
        key=${m%%:*}; name=${m#*:}
        [ -n "${got[A,$key]:-}" ] || continue
        a=$(echo "${got[A,$key]}" | tr ' ' '\n' | grep . | median)
        b=$(echo "${got[B,$key]}" | tr ' ' '\n' | grep . | median)
        ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }')
        echo "| $name | $backend | $a | $b | $ratio | ${got[A,$key]}| ${got[B,$key]}|"
    done
    unset got
done
