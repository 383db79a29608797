#!/usr/bin/env bash
# Write-path load benchmark of `regis serve` (benches/RESULTS.md, "regis-server: writes").
#
#   benches/write-load.sh [SECONDS] [BACKEND]      # defaults: 10 s per run, redb
#   REGIS_CONFIG=FILE benches/write-load.sh ...    # serve with a config file (limits)
#
# Needs wrk and curl, and the release builds:
#   cargo build --release -p regis --features sled
#   cargo build --release -p regis-store --features sled --example bulk_load
#
# It starts `regis serve --demo` (the element register) in a fresh directory on
# 127.0.0.1:$REGIS_PORT, mints a write token with `regis token`, then runs wrk (2 threads,
# 64 connections, keep-alive) posting to B/entries:
#   1. one entry per request, a new key each time (Lua script): every request is a whole
#      durable, signed write, answered with its receipt;
#   2. 1000 entries per request (the body built once per connection and thread, keys made
#      unique by a per-request prefix);
# and reads the server's write metrics (batch sizes, time queued / to signed / to durable,
# from the sequencer's own clock) after each run. The peer, in the same run: the same machine's
# raw durable-write rate, `bulk_load fsync-reference` copying a small file with one fsync per
# "batch" of one line (fsyncs per second), since each sequencer commit ends in fsyncs.
# Everything listens on 127.0.0.1 only; each step is bounded by `timeout`; the server is
# stopped by its PID on exit.
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
BACKEND=${2:-redb}
REGIS_PORT=${REGIS_PORT:-18090}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
BULK=${BULK:-$ROOT/target/release/examples/bulk_load}
source "$ROOT/benches/common.sh"
bench_start write-load wrk curl "$REGIS" "$BULK"

echo "== peer: fsyncs per second on this disk (one line per fsync)"
timeout 120 "$BULK" synthetic "$WORK/small.rsf" 2000 >/dev/null
timeout 120 "$BULK" fsync-reference "$WORK/small.rsf" "$WORK/fsync.out" 1

echo "== serve ($BACKEND)"
RUST_LOG=${RUST_LOG:-warn} "$REGIS" serve --demo --backend "$BACKEND" --data "$WORK/data" \
    --listen "127.0.0.1:$REGIS_PORT" ${REGIS_CONFIG:+--config "$REGIS_CONFIG"} \
    >"$WORK/regis.log" 2>&1 &
REGIS_PID=$!
STOP_PIDS+=("$REGIS_PID")
wait_ready "http://127.0.0.1:$REGIS_PORT"
TOKEN=$("$REGIS" token --backend "$BACKEND" --data "$WORK/data" --register element | tail -n 1)
B="http://127.0.0.1:$REGIS_PORT/registers/element"

# Each request a new key: thread id, connection-local counter.
{
    lua_thread_prelude
    cat <<EOF
request = function()
    counter = counter + 1
    local key = string.format("t%d-%d", tid, counter)
    local body = string.format(
        '[{"key":"%s","item":{"element":"%s","name":"Load %d","atomic-number":"%d"}}]',
        key, key, counter, counter)
    return wrk.format("POST", "/registers/element/entries",
        {["Authorization"] = "Bearer $TOKEN", ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
    if status ~= 200 then
        io.stderr:write("status " .. status .. ": " .. body .. "\n")
    end
end
EOF
} >"$WORK/one.lua"

# 1000 entries per request: the entries' template is built once; each request substitutes a
# new prefix into the keys.
{
    lua_thread_prelude
    cat <<EOF
local parts = {}
for i = 1, 1000 do
    parts[i] = string.format(
        '{"key":"PFX-%d","item":{"element":"PFX-%d","name":"Bulk %d","atomic-number":"%d"}}',
        i, i, i, i)
end
local template = "[" .. table.concat(parts, ",") .. "]"
request = function()
    counter = counter + 1
    local body = string.gsub(template, "PFX", string.format("b%d-%d", tid, counter))
    return wrk.format("POST", "/registers/element/entries",
        {["Authorization"] = "Bearer $TOKEN", ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
    if status ~= 200 then
        io.stderr:write("status " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
    end
end
EOF
} >"$WORK/thousand.lua"

metrics() {
    curl -fs "http://127.0.0.1:$REGIS_PORT/metrics" |
        grep -E '^regis_write_(requests_total|entries_total|batch_entries_(sum|count)|(queued|signed|durable)_seconds_(sum|count))' || true
    curl -fs "$B/log/checkpoint" | head -n 2 | tail -n 1 | sed 's/^/user log size: /'
}

run() {
    echo "== $1"
    shift
    timeout $((SECONDS_PER_RUN + 60)) wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --timeout 30s \
        --latency "$@"
    uptime
    metrics
}
run "64 clients, one entry per request" -s "$WORK/one.lua" "$B"
run "64 clients, 1000 entries per request" -s "$WORK/thousand.lua" "$B"
echo "regis after the runs: $(grep -E 'VmHWM|VmRSS' /proc/$REGIS_PID/status | tr -s ' \n' ' ')"
echo "data directory: $(du -sh "$WORK/data" | cut -f1)"
