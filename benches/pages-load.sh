#!/usr/bin/env bash
# Load benchmark of the HTML record page (benches/RESULTS.md, "regis-server: pages").
#
#   benches/pages-load.sh [SECONDS]      # default: 10 s per run
#
# Needs wrk and curl (apt-get install -y wrk curl), the shared fixtures, and the release build:
#   cargo build --release -p regis
#
# It loads the real country register (registry-data/country.rsf) into a fresh directory, runs
# `regis serve` on 127.0.0.1:$REGIS_PORT, weighs a record page (GM: four entries of history)
# with what it loads (verify.js, regis.css), then runs wrk with `Accept: text/html` against:
#   1. that record page, 2 threads, 8 connections;
#   2. the same, 64 connections (queueing on this machine's 2 cores dominates);
#   3. a random record page of the register each request (wrk Lua script), 8 connections;
#   4. the same record as JSON, for scale.
# Everything listens on 127.0.0.1 only; every step is bounded by `timeout`; the server it
# started is stopped by its PID on exit.
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
REGIS_PORT=${REGIS_PORT:-18090}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
FIXTURES=${REGIS_FIXTURES:-$ROOT/../shared/fixtures}
source "$ROOT/benches/common.sh"
bench_start pages-load wrk curl "$REGIS"

echo "== load country"
timeout 300 "$REGIS" load --data "$WORK/data" --register country \
    "$FIXTURES/registers/registry-data/country.rsf" | tail -n 1

RUST_LOG=${RUST_LOG:-warn} "$REGIS" serve --data "$WORK/data" --listen "127.0.0.1:$REGIS_PORT" \
    >"$WORK/regis.log" 2>&1 &
REGIS_PID=$!
STOP_PIDS+=("$REGIS_PID")
BASE="http://127.0.0.1:$REGIS_PORT"
wait_ready "$BASE"
PAGE="$BASE/registers/country/records/GM"

echo "== weight of a record page (bytes as sent without and with gzip)"
for url in "$PAGE" "$BASE/assets/verify.js" "$BASE/assets/regis.css"; do
    plain=$(curl -fs -H 'Accept: text/html' "$url" | wc -c)
    gzip=$(curl -fs -H 'Accept: text/html' -H 'Accept-Encoding: gzip' "$url" | wc -c)
    echo "$url: $plain B ($gzip B gzipped)"
done

cat >"$WORK/keys.lua" <<LUA
-- A random record page of the register for each request.
local keys = {}
for key in io.open("$WORK/keys.txt"):lines() do keys[#keys + 1] = key end
math.randomseed(1)
request = function()
    return wrk.format("GET", "/registers/country/records/" .. keys[math.random(1, #keys)],
        { ["Accept"] = "text/html" })
end
LUA
curl -fs "$BASE/registers/country/records.csv?page-size=5000" | tail -n +2 | cut -d, -f4 \
    | tr -d '"' >"$WORK/keys.txt"
echo "$(wc -l <"$WORK/keys.txt") keys"
# Every key's page must answer 200, or the run below measures errors.
for key in $(head -n 5 "$WORK/keys.txt"); do
    curl -fs -o /dev/null -H 'Accept: text/html' "$BASE/registers/country/records/$key"
done

run() {
    echo "== $1"
    shift
    timeout $((SECONDS_PER_RUN + 30)) wrk -t2 -d"${SECONDS_PER_RUN}s" --latency "$@"
    uptime
}
run "record page GM (text/html), 8 connections" -c8 -H 'Accept: text/html' "$PAGE"
run "record page GM (text/html), 64 connections" -c64 -H 'Accept: text/html' "$PAGE"
run "a random record page (text/html), 8 connections" -c8 -s "$WORK/keys.lua" "$BASE"
run "record GM as JSON, 8 connections" -c8 "$PAGE.json"
echo "regis after the runs: $(grep -E 'VmHWM|VmRSS' /proc/$REGIS_PID/status | tr -s ' \n' ' ')"
