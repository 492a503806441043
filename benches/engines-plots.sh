#!/usr/bin/env bash
# Plots of one `benches/run.sh` report (default benches/last-run.md, the run BENCHMARKS.md
# quotes): each engine's idle enqueue-to-start latency (p50, p99, max) and its drain rate, as
# SVG bar charts in benches/plots/ (engines-latency.svg, engines-throughput.svg), from the
# report's own tables. benches/run.sh calls it on the report it just wrote.
# Usage: benches/engines-plots.sh [REPORT.md]
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT=${1:-benches/last-run.md}
WHEN=$(sed -n 's/^- date: \([^;]*\);.*/\1/p' "$REPORT" | head -1)
# Rows of the table whose header starts with $1 (up to the next blank line), as
# "system/backend col col …" with the bold marks and spaces inside cells removed.
rows() {
    awk -v header="$1" '
        index($0, header) == 1 { on = 1; next }
        on && /^\|---/ { next }
        on && !/^\|/ { on = 0 }
        on {
            n = split($0, cell, "|"); line = ""
            for (i = 2; i < n; i++) { c = cell[i]; gsub(/\*\*|^ +| +$/, "", c); gsub(/ +/, "", c); cell[i] = c }
            line = cell[2] "/" cell[3]
            for (i = 4; i < n; i++) line = line " " cell[i]
            print line
        }' "$REPORT"
}
rows "| system | backend | p50 ms | p99 ms |" | awk '{print $1, $2, $3, $4}' |
    awk -v title="Idle enqueue -> start latency per engine, ms (run of $WHEN)" -v unit="" -v series="p50,p99,max" \
        -f benches/svg-groups.awk > benches/plots/engines-latency.svg
rows "| system | backend | jobs/s" | awk '{print $1, $2}' | sed 's|^graphile.mjs--batched|graphile-batched|; s|\.mjs||' |
    awk -v title="Drain rate per engine, jobs/s, median (run of $WHEN)" -v unit="" -f benches/svg.awk > benches/plots/engines-throughput.svg
echo "wrote benches/plots/engines-latency.svg and benches/plots/engines-throughput.svg from $REPORT"
