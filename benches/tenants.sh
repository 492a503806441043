#!/usr/bin/env bash
# Many tenants behind BENCHMARKS.md, "Issue 14: many tenants": `hangar bench tenants` at each
# size of SIZES (workspaces:schedules:endpoints; default 10^2:10^3:10, 10^3:10^4:100,
# 10^4:10^5:1 000) on PostgreSQL (database hangar_proof_tenants of the machine's server,
# fresh per size) and SQLite (a fresh file per size). Each run stores the schedules (each due
# once a minute) and endpoints, waits for every schedule's first slot, then measures for
# SECONDS (default 60): planner lag (slot -> job inserted), claim latency of probe jobs
# (enqueue -> handler start, 10 a second, in the schedules' queue) and event delivery latency
# (publish -> arrival at a loopback receiver, 10 events a second).
# Writes benches/plots/tenants-{planner-lag,claim}.svg and a Markdown table on stdout.
# Usage: benches/tenants.sh [--sizes "W:S:E …"] [--seconds N] [--backends "postgres sqlite"] [--debug] > report.md
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="100:1000:10 1000:10000:100 10000:100000:1000"; SECONDS_=60; BACKENDS="postgres sqlite"; PROFILE=release
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --seconds) SECONDS_=$2; shift 2 ;;
        --backends) BACKENDS=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        *) echo "usage: benches/tenants.sh [--sizes \"W:S:E …\"] [--seconds N] [--backends \"postgres sqlite\"] [--debug]" >&2; exit 2 ;;
    esac
done
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
if [ $PROFILE = release ]; then cargo build --release --quiet --bin hangar; else cargo build --quiet --bin hangar; fi
BIN="$PWD/target/$PROFILE/hangar"
WORK=$(mktemp -d)
cleanup() { psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_tenants" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
export HANGAR_MASTER_KEY; HANGAR_MASTER_KEY=$("$BIN" keys generate 2>/dev/null | tail -1)
url() {
    if [ "$1" = postgres ]; then
        psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_tenants" -qAtc "CREATE DATABASE hangar_proof_tenants" >/dev/null 2>&1
        echo "$PG_BASE/hangar_proof_tenants"
    else
        rm -f "$WORK"/tenants.db*; echo "sqlite://$WORK/tenants.db"
    fi
}
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
pow() { awk -v n="$1" 'BEGIN { e = log(n) / log(10); if (e == int(e + 0.5) && n >= 100) printf "10^%d", e + 0.5; else printf "%d", n }'; }

echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: benches/tenants.sh --sizes \"$SIZES\" --seconds $SECONDS_ --backends \"$BACKENDS\" ($PROFILE build)"
echo
echo "| backend | workspaces | schedules | endpoints | schedule jobs in the window (per min) | planner lag p50 / p99 ms | claim p50 / p99 ms | delivery p50 / p99 ms | load avg |"
echo "|---|---|---|---|---|---|---|---|---|"
: >"$WORK/lag"; : >"$WORK/claim"
for size in $SIZES; do
    IFS=: read -r w s e <<<"$size"
    label="$(pow "$w")ws/$(pow "$s")sch/$(pow "$e")ep"
    lagrow="$label"; claimrow="$label"
    for backend in $BACKENDS; do
        u=$(url "$backend")
        if ! line=$(HANGAR_DATABASE_URL=$u HANGAR_LOG=warn "$BIN" bench tenants --workspaces "$w" --schedules "$s" \
            --endpoints "$e" --seconds "$SECONDS_" 2>"$WORK/stderr" | tail -1); then
            echo "| $backend | $w | $s | $e | **failed**: $(grep -v '^{' "$WORK/stderr" | tail -1) | | | | $(cut -d' ' -f1 /proc/loadavg) |"
            lagrow="$lagrow 0 0"; claimrow="$claimrow 0 0"; continue
        fi
        g() { echo "$line" | field "$1"; }
        jobs=$(g schedule_jobs); late=$(g probes_unstarted)
        echo "| $backend | $w | $s | $e | $jobs ($(awk -v j="$jobs" -v t="$SECONDS_" 'BEGIN {printf "%.0f", j * 60 / t}')) | $(g planner_lag_p50_ms) / **$(g planner_lag_p99_ms)** | $(g claim_p50_ms) / **$(g claim_p99_ms)**$([ "${late:-0}" != 0 ] && echo " ($late probes not started 30 s after the window)") | $(g delivery_p50_ms) / $(g delivery_p99_ms) | $(cut -d' ' -f1 /proc/loadavg) |"
        lagrow="$lagrow $(g planner_lag_p50_ms) $(g planner_lag_p99_ms)"
        claimrow="$claimrow $(g claim_p50_ms) $(g claim_p99_ms)"
    done
    echo "$lagrow" >>"$WORK/lag"; echo "$claimrow" >>"$WORK/claim"
done
series=$(for b in $BACKENDS; do printf '%s p50,%s p99,' "$b" "$b"; done)
awk -v title="Planner lag (slot -> job inserted) vs size, ms ($PROFILE build)" -v unit="" -v series="${series%,}" -f benches/svg-groups.awk "$WORK/lag" > benches/plots/tenants-planner-lag.svg
awk -v title="Claim latency of probe jobs (enqueue -> start) vs size, ms ($PROFILE build)" -v unit="" -v series="${series%,}" -f benches/svg-groups.awk "$WORK/claim" > benches/plots/tenants-claim.svg
