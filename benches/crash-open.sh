#!/usr/bin/env bash
# First open after a crash amid small commits (benches/RESULTS.md, "regis-store").
#
#   benches/crash-open.sh [ENTRIES] [KILLS]      # defaults: 1000000 entries, 3 kills
#
# Needs wrk and curl, and the release builds:
#   cargo build --release -p regis
#   cargo build --release -p regis-store --example bulk_load
#
# It loads regis-model's synthetic register of ENTRIES user entries into a fresh directory
# (`regis load`), then KILLS times: starts `regis serve` on 127.0.0.1:$REGIS_PORT, has 24 wrk
# connections post one new entry per request for 4 s (a stream of small durable commits), sends
# the server SIGKILL while they run, and times `bulk_load first-proof` (a fresh process: open the
# register, which checks it against its signed checkpoint, and serve one verified inclusion proof)
# twice: the first open after the crash, and the clean one after it. Everything listens on
# 127.0.0.1 only; each step is bounded by `timeout`.
set -euo pipefail

ENTRIES=${1:-1000000}
KILLS=${2:-3}
REGIS_PORT=${REGIS_PORT:-18092}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
BULK=${BULK:-$ROOT/target/release/examples/bulk_load}
source "$ROOT/benches/common.sh"
bench_start crash-open wrk curl "$REGIS" "$BULK"

echo "== load $ENTRIES synthetic entries"
timeout 300 "$BULK" synthetic "$WORK/synthetic.rsf" "$ENTRIES" >/dev/null
timeout 900 "$REGIS" load --data "$WORK/data" --register synthetic "$WORK/synthetic.rsf" \
    2>/dev/null | tail -n 1
rm "$WORK/synthetic.rsf"
# The synthetic register has no schema; new entries need one: its fields as system entries.
{
    stamp=2026-11-26T20:00:00Z
    for field in end-date name official-name start-date synthetic text; do
        item='{"cardinality":"1","datatype":"string","field":"'$field'","phase":"beta","text":"synthetic field"}'
        printf 'add-item\t%s\nappend-entry\tsystem\tfield:%s\t%s\tsha-256:%s\n' \
            "$item" "$field" "$stamp" "$(printf '%s' "$item" | sha256sum | cut -d' ' -f1)"
    done
    item='{"fields":["end-date","name","official-name","start-date","synthetic","text"],"phase":"beta","register":"synthetic","text":"Synthetic register"}'
    printf 'add-item\t%s\nappend-entry\tsystem\tregister:synthetic\t%s\tsha-256:%s\n' \
        "$item" "$stamp" "$(printf '%s' "$item" | sha256sum | cut -d' ' -f1)"
} >"$WORK/schema.rsf"
timeout 60 "$REGIS" load --data "$WORK/data" --register synthetic "$WORK/schema.rsf" \
    2>/dev/null | tail -n 1
TOKEN=$("$REGIS" token --data "$WORK/data" --register synthetic | tail -n 1)

{
    lua_thread_prelude
    cat <<EOF
request = function()
    counter = counter + 1
    local key = string.format("crash-%d-%d-%d", RUN, tid, counter)
    local body = string.format(
        '[{"key":"%s","item":{"synthetic":"%s","name":"Crash %d"}}]', key, key, counter)
    return wrk.format("POST", "/registers/synthetic/entries",
        {["Authorization"] = "Bearer $TOKEN", ["Content-Type"] = "application/json"}, body)
end
EOF
} >"$WORK/one.lua"

for run in $(seq "$KILLS"); do
    echo "== kill $run"
    RUST_LOG=warn "$REGIS" serve --data "$WORK/data" --listen "127.0.0.1:$REGIS_PORT" \
        >"$WORK/regis.log" 2>&1 &
    REGIS_PID=$!
    STOP_PIDS+=("$REGIS_PID")
    wait_ready "http://127.0.0.1:$REGIS_PORT"
    sed "s/RUN/$run/" "$WORK/one.lua" >"$WORK/run.lua"
    timeout 30 wrk -t2 -c24 -d10s -s "$WORK/run.lua" \
        "http://127.0.0.1:$REGIS_PORT/registers/synthetic" >"$WORK/wrk.log" 2>&1 &
    WRK_PID=$!
    sleep 4
    kill -9 "$REGIS_PID"
    wait "$REGIS_PID" 2>/dev/null || true
    kill "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
    grep -E "requests in|Non-2xx" "$WORK/wrk.log" || true
    ls -l "$WORK/data/registers/synthetic/"*.redb | awk '{print $5, $9}'
    echo "-- first open after the kill"
    timeout 120 "$BULK" first-proof "$WORK/data" synthetic redb
    echo "-- the open after that"
    timeout 120 "$BULK" first-proof "$WORK/data" synthetic redb
done
