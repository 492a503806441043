#!/usr/bin/env bash
# Fault injection behind RELIABILITY.md (issue 14). Three scenarios, each printing one line
# of figures (lost, ran twice and why):
#   kill9:    `hangar bench faults`: JOBS http jobs drained by 3 `hangar worker` processes on
#             PostgreSQL (database hangar_proof_faults of the machine's server), one killed with
#             SIGKILL every 3 s and restarted; every run is counted by a recorder.
#   pg:       the same jobs enqueued at a rate *during* the drain by 3 workers, against a
#             throwaway PostgreSQL cluster of its own (initdb in a temp folder, port 55432, so
#             the machine's shared server is never restarted), restarted twice under the load:
#             `pg_ctl restart -m fast`, then `-m immediate` (crash, WAL recovery).
#   redis:    a `hangar worker` consuming the ingress stream of a redis-server of its own
#             (port 6390, appendfsync always) while a producer XADDs job entries; Redis is
#             shut down and restarted, then killed with SIGKILL and restarted. Every entry whose
#             XADD was acknowledged must become exactly one job.
# Usage: benches/faults.sh [--jobs N] [--debug] [kill9|pg|redis ...]  (default: all three,
# JOBS=1000000; a short proof run: --jobs 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=1000000; PROFILE=release; SCENARIOS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --jobs) JOBS=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        kill9|pg|redis) SCENARIOS+=("$1"); shift ;;
        *) echo "usage: benches/faults.sh [--jobs N] [--debug] [kill9|pg|redis ...]" >&2; exit 2 ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(kill9 pg redis)
PG_ADMIN="${HANGAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
if [ $PROFILE = release ]; then cargo build --release --quiet --bin hangar; else cargo build --quiet --bin hangar; fi
BIN="$PWD/target/$PROFILE/hangar"
WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -d "$WORK/pg" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" stop -m immediate >/dev/null 2>&1 || true
    [ -f "$WORK/redis.pid" ] && kill -9 "$(cat "$WORK/redis.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export HANGAR_MASTER_KEY; HANGAR_MASTER_KEY=$("$BIN" keys generate 2>/dev/null | tail -1)
export HANGAR_LOG=info
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: benches/faults.sh --jobs $JOBS ${SCENARIOS[*]} ($PROFILE build)"

for scenario in "${SCENARIOS[@]}"; do
case $scenario in
kill9)
    psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_faults" -qAtc "CREATE DATABASE hangar_proof_faults" 2>/dev/null
    line=$(HANGAR_DATABASE_URL="$PG_BASE/hangar_proof_faults" "$BIN" bench faults --jobs "$JOBS" --workers 3 \
        --kill-every-ms 3000 --log-dir "$WORK/kill9" 2>"$WORK/kill9.err" | tail -1)
    echo "- **kill -9**: $(cat "$WORK/kill9.err" | tail -1)"
    grep "ran twice without a lease expiry" "$WORK/kill9.err" | sed 's/^/  - /' || true
    echo "  - \`$line\`"
    psql "$PG_ADMIN" -qAtc "DROP DATABASE IF EXISTS hangar_proof_faults" >/dev/null 2>&1
    ;;
pg)
    mkdir "$WORK/pg"; chown postgres "$WORK/pg"
    runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres >/dev/null
    pgctl() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/server.log" -w "$@" >/dev/null; }
    pgctl -o "-p 55432 -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start
    url=postgres://postgres@127.0.0.1:55432/postgres
    rate=$(( JOBS / 60 )); [ "$rate" -ge 50 ] || rate=50
    HANGAR_DATABASE_URL=$url "$BIN" bench faults --jobs "$JOBS" --workers 3 --kill-every-ms 0 \
        --enqueue-rate "$rate" --log-dir "$WORK/pglogs" >"$WORK/pg.out" 2>"$WORK/pg.err" &
    bench=$!; PIDS+=("$bench")
    sleep 15; t0=$(date +%s%N); pgctl -m fast restart -o "-p 55432 -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200"
    fast_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    sleep 15; t0=$(date +%s%N); pgctl -m immediate restart -o "-p 55432 -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200"
    immediate_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    wait "$bench" || true
    lost_listen=$(cat "$WORK"/pglogs/worker-*.log | grep -c "LISTEN connection lost\|LISTEN connection failed" || true)
    echo "- **PostgreSQL restarts** under enqueue ($rate jobs/s) and drain by 3 workers: \`pg_ctl restart -m fast\` (took $fast_ms ms) after 15 s, \`-m immediate\` (took $immediate_ms ms) 15 s later; LISTEN lost/failed warnings in the workers' logs: $lost_listen"
    echo "  - $(tail -1 "$WORK/pg.err")"
    grep "ran twice without a lease expiry" "$WORK/pg.err" | sed 's/^/  - /' || true
    echo "  - \`$(tail -1 "$WORK/pg.out")\`"
    pgctl -m fast stop
    ;;
redis)
    rport=6390
    redis_start() {
        redis-server --port $rport --bind 127.0.0.1 --dir "$WORK" --appendonly yes --appendfsync always \
            --save "" --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
        for _ in $(seq 50); do redis-cli -p $rport ping >/dev/null 2>&1 && break; sleep 0.1; done
    }
    redis_start
    db="sqlite://$WORK/redis.db"
    HANGAR_DATABASE_URL=$db "$BIN" migrate >/dev/null 2>&1
    HANGAR_DATABASE_URL=$db HANGAR_REDIS_URL=redis://127.0.0.1:$rport "$BIN" worker --bind 127.0.0.1:0 2>"$WORK/redis-worker.log" &
    worker=$!; PIDS+=("$worker")
    entries=$(( JOBS / 20 )); [ "$entries" -ge 2000 ] || entries=2000
    run=$(date +%s)
    # The producer: RESP over one TCP connection per attempt; an entry counts as acknowledged
    # when Redis answered its XADD with an id. Refused or cut off: wait and send it again.
    produce() {
        local i=0 acked=0 retries=0
        export LC_ALL=C
        while [ $i -lt "$entries" ]; do
            if ! exec 3<>/dev/tcp/127.0.0.1/$rport 2>/dev/null; then retries=$((retries + 1)); sleep 0.1; continue; fi
            while [ $i -lt "$entries" ]; do
                msg="{\"kind\":\"job\",\"job\":{\"kind\":\"noop\",\"workspace_id\":\"proof\",\"args\":{},\"idempotency_key\":\"redis-$run-$i\"}}"
                printf '*5\r\n$4\r\nXADD\r\n$14\r\nhangar:ingress\r\n$1\r\n*\r\n$3\r\nmsg\r\n$%d\r\n%s\r\n' "${#msg}" "$msg" >&3 2>/dev/null || break
                IFS= read -r -t 5 reply <&3 || break
                case "$reply" in
                    \$*) IFS= read -r -t 5 id <&3 || break; acked=$((acked + 1)); i=$((i + 1)) ;;
                    *) break ;;
                esac
            done
            exec 3<&- 2>/dev/null || true
            [ $i -lt "$entries" ] && { retries=$((retries + 1)); sleep 0.1; }
        done
        echo "acked=$acked retries=$retries"
    }
    produce >"$WORK/producer.out" &
    producer=$!; PIDS+=("$producer")
    sleep 5; redis-cli -p $rport shutdown >/dev/null 2>&1 || true; sleep 2; redis_start
    sleep 5; kill -9 "$(cat "$WORK/redis.pid")"; sleep 2; redis_start
    wait "$producer"
    acked=$(field acked <"$WORK/producer.out"); retries=$(field retries <"$WORK/producer.out")
    jobs=0
    for _ in $(seq 600); do
        jobs=$(sqlite3 "$WORK/redis.db" "SELECT count(DISTINCT idempotency_key) FROM hangar_jobs WHERE idempotency_key LIKE 'redis-$run-%'" 2>/dev/null || echo 0)
        [ "$jobs" -ge "$acked" ] && break; sleep 0.5
    done
    dead=$(redis-cli -p $rport xlen hangar:ingress:dead)
    pending=$(redis-cli -p $rport xpending hangar:ingress hangar 2>/dev/null | head -1)
    reconnects=$(grep -c "Redis unavailable" "$WORK/redis-worker.log" || true)
    kill "$worker"; wait "$worker" 2>/dev/null || true
    echo "- **Redis restarts** under ingress load: $entries job entries XADDed one at a time; SHUTDOWN + restart after 5 s, SIGKILL + restart 5 s later (AOF, appendfsync always)"
    echo "  - \`acked=$acked jobs=$jobs lost=$(( acked - jobs )) dead_letters=$dead pending=$pending producer_retries=$retries consumer_redis_unavailable_warnings=$reconnects\`"
    ;;
esac
done
