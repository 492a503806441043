#!/usr/bin/env bash
# The integrations' benchmarks (issue 11): sync throughput from the QuickBooks simulator,
# the share of QuickBooks' 500 requests/min a backfill uses (and its 429s), and the token
# refresh of 10 000 connections due at once. Release build, PostgreSQL and Redis of the
# machine (HANGAR_TEST_DATABASE_URL, HANGAR_TEST_REDIS_URL). Prints a Markdown report.
#
#   benches/sync.sh > report.md
#   HANGAR_BENCH_RECORDS=50000 HANGAR_BENCH_BUDGET_SECS=120 HANGAR_BENCH_CONNECTIONS=10000 \
#   HANGAR_BENCH_REFRESH_CONCURRENCY=50 benches/sync.sh   # the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
export HANGAR_TEST_DATABASE_URL=${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export HANGAR_TEST_REDIS_URL=${HANGAR_TEST_REDIS_URL:-redis://127.0.0.1:6379}
cargo test --release --test it --no-run >&2
echo "# Integrations benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)"
echo "- machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); $(psql "$HANGAR_TEST_DATABASE_URL" -qAtc 'SHOW server_version' | sed 's/^/PostgreSQL /')"
echo
for bench in bench_sync_throughput bench_sync_budget bench_token_refresh; do
    status=passed
    out=$(cargo test --release --test it -- --ignored --exact "bench_sync::$bench" --nocapture 2>&1) \
        || status="FAILED (its goal was not met, or it broke: see stderr)"
    echo "$out" >&2
    line=$(echo "$out" | grep '^BENCH' || echo "BENCH $bench: no figures")
    echo "- \`$line\` — $status"
done
