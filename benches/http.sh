#!/usr/bin/env bash
# The HTTP API under load (issue 14; BENCHMARKS.md, "HTTP API under load"). Release build; a
# `hangar serve` on loopback on a fresh database per backend (PostgreSQL: hangar_proof_http;
# SQLite: a new file), then `hangar bench http`: RATE req/s offered for SECONDS (open model,
# half GET /api/v1/jobs, half POST /api/v1/events, over enough tokens to stay under the
# per-token rate), then one token at 4x its rate for 5 s (429 with Retry-After, never 5xx).
# Prints a Markdown table on stdout.
# Usage: benches/http.sh [--rate 2000] [--seconds 30] [--debug] > report.md
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=2000; SECONDS_=30; PROFILE=release
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift 2 ;;
        --seconds) SECONDS_=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        *) echo "usage: benches/http.sh [--rate N] [--seconds N] [--debug]" >&2; exit 2 ;;
    esac
done
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
if [ $PROFILE = release ]; then cargo build --release --quiet --bin hangar; else cargo build --quiet --bin hangar; fi
BIN="$PWD/target/$PROFILE/hangar"
WORK=$(mktemp -d)
SERVE=""
cleanup() { [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export HANGAR_MASTER_KEY; HANGAR_MASTER_KEY=$("$BIN" keys generate 2>/dev/null | tail -1)
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: benches/http.sh --rate $RATE --seconds $SECONDS_ ($PROFILE build)"
echo
echo "| backend | offered req/s | answered req/s | p50 ms | p99 ms | errors | one token at 200 req/s: 2xx / 429 (with Retry-After) / 5xx | serve RSS MiB after |"
echo "|---|---|---|---|---|---|---|---|"
for backend in postgres sqlite; do
    if [ $backend = postgres ]; then
        psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_http" -qAtc "CREATE DATABASE hangar_proof_http" 2>/dev/null
        url="$PG_BASE/hangar_proof_http"
    else
        url="sqlite://$WORK/http.db"
    fi
    port=$((20000 + RANDOM % 20000))
    HANGAR_DATABASE_URL=$url HANGAR_LOG=warn "$BIN" serve --bind 127.0.0.1:$port >"$WORK/serve.log" 2>&1 &
    SERVE=$!
    for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.5; done
    line=$(HANGAR_DATABASE_URL=$url "$BIN" bench http --url "http://127.0.0.1:$port" --rate "$RATE" --seconds "$SECONDS_" 2>"$WORK/bench.err" | tail -1)
    sed 's/^/    /' "$WORK/bench.err" >&2
    rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$SERVE/status)
    kill "$SERVE"; wait "$SERVE" 2>/dev/null || true; SERVE=""
    f() { echo "$line" | field "$1"; }
    echo "| $backend | $(f offered_rps) | **$(f answered_rps)** | $(f p50_ms) | **$(f p99_ms)** | $(f errors) | $(f limit_2xx) / $(f limit_429) ($(f limit_429_with_retry_after)) / $(f limit_5xx) | $rss |"
done
psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_http" >/dev/null 2>&1 || true
