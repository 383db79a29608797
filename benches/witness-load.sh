#!/usr/bin/env bash
# Witnessing benchmark of `regis serve` (benches/RESULTS.md, "regis-server: witnessed writes").
#
#   benches/witness-load.sh [SECONDS] [INTERVAL_MS]   # defaults: 10 s per run, 1000 ms
#
# Needs wrk and curl, and the release builds:
#   cargo build --release -p regis
#   cargo build --release -p regis-server --example test_witness
#
# In one run, on 127.0.0.1 only, each step bounded by `timeout`, every process stopped by
# its PID on exit, two `regis serve --demo` (the element register), each in a directory of
# its own: PLAIN with no witness policy, WITNESSED with a policy of two witnesses, both
# required (`group both all w1 w2`), `witness-interval-ms` INTERVAL_MS; the witnesses are two
# `test_witness` processes (the tests' witness: regis-note's check_add_checkpoint, an Ed25519
# cosignature/v1 key, state in memory). Then:
#   1. wrk (2 threads, 64 connections) posting one entry per request, a new key each time (as
#      write-load.sh), to PLAIN, WITNESSED, PLAIN, WITNESSED in turn: the writes' throughput
#      and latency with and without witnesses, interleaved against drift on a shared machine;
#   2. the same to WITNESSED with `?wait=witnessed`, answered once a checkpoint cosigned by
#      both covers the write: the time from a write to its witnessed checkpoint, with 64
#      writers and with one writing without pause (each write then waits for the next round,
#      rounds being INTERVAL_MS apart), and for 20 writes each after a pause longer than the
#      interval (curl's time_total);
#   3. WITNESSED, once its last checkpoint is witnessed, left idle for 60 s: the witness
#      requests it made meanwhile (regis_witness_requests_total before and after).
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
INTERVAL_MS=${2:-1000}
PLAIN_PORT=${REGIS_PORT:-18095}
WITNESSED_PORT=$((PLAIN_PORT + 1))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
WITNESS=${WITNESS:-$ROOT/target/release/examples/test_witness}
source "$ROOT/benches/common.sh"
bench_start witness-load wrk curl "$REGIS" "$WITNESS"

# Starts `regis serve --demo` on DATA at PORT with the extra arguments given; sets SERVED.
serve() {
    local data=$1 port=$2
    shift 2
    RUST_LOG=${RUST_LOG:-warn} "$REGIS" serve --demo --data "$data" \
        --listen "127.0.0.1:$port" "$@" >>"$WORK/regis.log" 2>&1 &
    SERVED=$!
    STOP_PIDS+=("$SERVED")
    wait_ready "http://127.0.0.1:$port"
}

# A wrk script posting one entry per request, a new key each time (PREFIX, thread, counter),
# to the element register with QUERY; it reports the first few answers that are not 200.
write_script() {
    local token=$1 prefix=$2 query=$3
    lua_thread_prelude
    cat <<LUA
local failures = 0
request = function()
    counter = counter + 1
    local key = string.format("$prefix-%d-%d", tid, counter)
    local body = string.format(
        '[{"key":"%s","item":{"element":"%s","name":"Load %d","atomic-number":"%d"}}]',
        key, key, counter, counter)
    return wrk.format("POST", "/registers/element/entries$query",
        {["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
    if status ~= 200 then
        failures = failures + 1
        if failures <= 3 then
            io.stderr:write("status " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
        end
    end
end
LUA
}

run() {
    local title=$1 port=$2 threads=$3 connections=$4 script=$5
    echo "== $title"
    timeout $((SECONDS_PER_RUN + 60)) wrk -t"$threads" -c"$connections" -d"${SECONDS_PER_RUN}s" \
        --timeout 60s --latency -s "$script" "http://127.0.0.1:$port/registers/element"
    uptime
}

witness_requests() {
    curl -fs "http://127.0.0.1:$WITNESSED_PORT/metrics" |
        awk '/^regis_witness_requests_total/ { sum += $2 } END { print sum + 0 }'
}

echo "== servers"
serve "$WORK/plain" "$PLAIN_PORT"
# The witnessed register is made first, so that the witnesses can be given its logs' keys.
serve "$WORK/witnessed" "$WITNESSED_PORT"
META=$(curl -fs "http://127.0.0.1:$WITNESSED_PORT/registers/element/register")
kill "$SERVED"
wait "$SERVED" 2>/dev/null || true
field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/" <<<"$META"; }
LOGS=("$(field log-origin)=$(field log-public-key)"
    "$(field system-log-origin)=$(field system-log-public-key)")
for n in 1 2; do
    "$WITNESS" "w$n" "$n" "${LOGS[@]}" >"$WORK/w$n.line" 2>>"$WORK/witness.log" &
    STOP_PIDS+=("$!")
done
for n in 1 2; do
    for _ in $(seq 100); do [[ -s "$WORK/w$n.line" ]] && break; sleep 0.1; done
done
{ cat "$WORK/w1.line" "$WORK/w2.line"; printf 'group both all w1 w2\nquorum both\n'; } \
    >"$WORK/witnesses.policy"
cat "$WORK/witnesses.policy"
printf 'witness-policy = "%s"\nwitness-interval-ms = %d\n' "$WORK/witnesses.policy" \
    "$INTERVAL_MS" >"$WORK/regis.toml"
echo "witness-interval-ms = $INTERVAL_MS"
serve "$WORK/witnessed" "$WITNESSED_PORT" --config "$WORK/regis.toml"
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$WITNESSED_PORT/registers/element/log/checkpoint" >/dev/null && break
    sleep 0.1
done
PLAIN_TOKEN=$("$REGIS" token --data "$WORK/plain" --register element | tail -n 1)
TOKEN=$("$REGIS" token --data "$WORK/witnessed" --register element | tail -n 1)

for round in 1 2; do
    write_script "$PLAIN_TOKEN" "p$round" "" >"$WORK/plain$round.lua"
    write_script "$TOKEN" "w$round" "" >"$WORK/witnessed$round.lua"
    run "no policy ($round): 64 clients, one entry per request" "$PLAIN_PORT" 2 64 \
        "$WORK/plain$round.lua"
    run "2 witnesses ($round): 64 clients, one entry per request" "$WITNESSED_PORT" 2 64 \
        "$WORK/witnessed$round.lua"
done
write_script "$TOKEN" "wait64" "?wait=witnessed" >"$WORK/wait64.lua"
write_script "$TOKEN" "wait1" "?wait=witnessed" >"$WORK/wait1.lua"
run "2 witnesses, ?wait=witnessed: 64 clients" "$WITNESSED_PORT" 2 64 "$WORK/wait64.lua"
run "2 witnesses, ?wait=witnessed: 1 client" "$WITNESSED_PORT" 1 1 "$WORK/wait1.lua"
echo "== 2 witnesses, ?wait=witnessed: 20 writes, each after a pause of the interval + 0.2 s"
PAUSE=$(awk -v ms="$INTERVAL_MS" 'BEGIN { printf "%.3f", ms / 1000 + 0.2 }')
for n in $(seq 20); do
    sleep "$PAUSE"
    body="[{\"key\":\"single-$n\",\"item\":{\"element\":\"single-$n\",\"name\":\"Single\",\"atomic-number\":\"$n\"}}]"
    timeout 60 curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$body" \
        "http://127.0.0.1:$WITNESSED_PORT/registers/element/entries?wait=witnessed"
done >"$WORK/single.txt"
awk '$1 != 200 { bad++ } { print $2 }' "$WORK/single.txt" | sort -n |
    awk '{ t[NR] = $1 } END { printf "p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d writes)\n",
        t[int(NR / 2 + 0.5)] * 1000, t[int(NR * 0.95 + 0.5)] * 1000, t[NR] * 1000, NR }'
grep -vc '^200 ' "$WORK/single.txt" | sed 's/^/answers other than 200: /' || true
curl -fs "http://127.0.0.1:$WITNESSED_PORT/metrics" | grep -E '^regis_witness' |
    grep -v '} 0$' | sort || true

echo "== idle for 60 s"
lag() {
    curl -fs "http://127.0.0.1:$WITNESSED_PORT/metrics" |
        awk '/^regis_witness_lag_entries/ { sum += $2 } END { print sum + 0 }'
}
for _ in $(seq 100); do [[ $(lag) == 0 ]] && break; sleep 0.1; done
echo "lag before: $(lag) entries"
BEFORE=$(witness_requests)
sleep 60
AFTER=$(witness_requests)
echo "witness requests while idle for 60 s: $((AFTER - BEFORE)) (total $AFTER)"
