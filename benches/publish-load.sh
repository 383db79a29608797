#!/usr/bin/env bash
# Publication benchmark of `regis serve` with [publish] (benches/RESULTS.md, "regis-server:
# publication to object storage").
#
#   benches/publish-load.sh [SECONDS] [INTERVAL_MS]   # defaults: 10 s per run, 1000 ms
#
# Needs wrk, curl and python3, and the release build: cargo build --release -p regis
# The target is a local directory (file://) unless PUBLISH_URL is set (then PUBLISH_OPTIONS,
# lines of `key = "value"`, are added to [publish], e.g. an S3 endpoint and credentials).
#
# In one run, on 127.0.0.1 only, each step bounded by `timeout`, every process stopped by
# its PID on exit, two `regis serve --demo` (the element register), each in a directory of
# its own: PLAIN without [publish], PUBLISHED with [publish] (interval-ms INTERVAL_MS). Then:
#   1. wrk (2 threads, 64 connections) posting one entry per request, a new key each time (as
#      write-load.sh), to PLAIN, PUBLISHED, PLAIN, PUBLISHED in turn: the writes' throughput
#      with publication off and on, interleaved against drift on a shared machine; and the
#      bucket's requests (regis_publish_requests_total) per 1,000 entries written;
#   2. during a third PUBLISHED run, 40 single-entry writes 0.25 s apart, each timed from its
#      answer (durable, signed) to the moment the bucket's log/checkpoint shows its size
#      (local target: the file polled every millisecond; S3: GET every 5 ms): the publication
#      lag under load, p50 and p99; then the same 40 with the server otherwise idle.
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
INTERVAL_MS=${2:-1000}
PLAIN_PORT=${REGIS_PORT:-18097}
PUBLISHED_PORT=$((PLAIN_PORT + 1))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
source "$ROOT/benches/common.sh"
bench_start publish-load wrk curl python3 "$REGIS"

BUCKET="$WORK/bucket"
mkdir -p "$BUCKET"
PUBLISH_URL=${PUBLISH_URL:-file://$BUCKET}

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

write_script() {
    local token=$1 prefix=$2
    lua_thread_prelude
    cat <<LUA
request = function()
    counter = counter + 1
    local key = string.format("$prefix-%d-%d", tid, counter)
    local body = string.format(
        '[{"key":"%s","item":{"element":"%s","name":"Load %d","atomic-number":"%d"}}]',
        key, key, counter, counter)
    return wrk.format("POST", "/registers/element/entries",
        {["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json"}, body)
end
LUA
}

run() {
    local title=$1 port=$2 script=$3
    echo "== $title"
    timeout $((SECONDS_PER_RUN + 60)) wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" \
        --timeout 60s --latency -s "$script" "http://127.0.0.1:$port/registers/element"
    uptime
}

metric_sum() {
    curl -fs "http://127.0.0.1:$PUBLISHED_PORT/metrics" |
        awk -v name="$1" '$1 ~ "^"name { sum += $2 } END { printf "%d", sum + 0 }'
}

served_size() {
    curl -fs "http://127.0.0.1:$PUBLISHED_PORT/registers/element/log/checkpoint" | sed -n 2p
}

# 40 writes 0.25 s apart, each timed from its answer to its size in the bucket's checkpoint.
lag_sample() {
    timeout 300 python3 - "$PUBLISHED_PORT" "$TOKEN" "$PUBLISH_URL" "$1" <<'PY'
import json, sys, time, urllib.request
port, token, url, label = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}/registers/element"
if url.startswith("file://"):
    path = url[len("file://"):] + "/registers/element/log/checkpoint"
    def published():
        try:
            with open(path) as f:
                return int(f.read().split("\n")[1])
        except (OSError, IndexError, ValueError):
            return 0
    pause = 0.001
else:
    sys.exit("lag sampling reads the bucket directly: a file:// target only")
lags = []
for n in range(40):
    time.sleep(0.25)
    key = f"{label}-{n}"
    body = json.dumps([{"key": key, "item": {"element": key, "name": "Lag", "atomic-number": str(n)}}]).encode()
    request = urllib.request.Request(base + "/entries", data=body, method="POST", headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        receipt = json.load(answer)
    answered = time.monotonic()
    size = int(receipt["entries"][0]["entry-number"])
    deadline = answered + 120
    while published() < size and time.monotonic() < deadline:
        time.sleep(pause)
    lags.append((time.monotonic() - answered) * 1000)
lags.sort()
pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
print(f"publication lag ({label}): p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
      f"max {lags[-1]:.1f} ms ({len(lags)} writes)")
PY
}

echo "== servers"
serve "$WORK/plain" "$PLAIN_PORT"
{
    printf '[publish]\nurl = "%s"\ninterval-ms = %d\n' "$PUBLISH_URL" "$INTERVAL_MS"
    printf '%s\n' "${PUBLISH_OPTIONS:-}"
} >"$WORK/regis.toml"
cat "$WORK/regis.toml"
serve "$WORK/published" "$PUBLISHED_PORT" --config "$WORK/regis.toml"
PLAIN_TOKEN=$("$REGIS" token --data "$WORK/plain" --register element | tail -n 1)
TOKEN=$("$REGIS" token --data "$WORK/published" --register element | tail -n 1)

for round in 1 2; do
    write_script "$PLAIN_TOKEN" "p$round" >"$WORK/plain$round.lua"
    write_script "$TOKEN" "w$round" >"$WORK/published$round.lua"
    run "publication off ($round): 64 clients, one entry per request" "$PLAIN_PORT" \
        "$WORK/plain$round.lua"
    entries_before=$(served_size)
    requests_before=$(metric_sum regis_publish_requests_total)
    run "publication on ($round): 64 clients, one entry per request" "$PUBLISHED_PORT" \
        "$WORK/published$round.lua"
    for _ in $(seq 600); do
        [[ $(metric_sum regis_publish_lag_entries) == 0 ]] && break
        sleep 0.1
    done
    entries=$(($(served_size) - entries_before))
    requests=$(($(metric_sum regis_publish_requests_total) - requests_before))
    awk -v r="$requests" -v e="$entries" \
        'BEGIN { printf "bucket requests: %d for %d entries, %.2f per 1,000 entries\n", r, e, r * 1000 / e }'
done

write_script "$TOKEN" "lag" >"$WORK/lag.lua"
echo "== publication lag under load (and a third publication-on run)"
run "publication on (3): 64 clients, one entry per request" "$PUBLISHED_PORT" "$WORK/lag.lua" \
    >"$WORK/lag-run.txt" &
LOAD=$!
sleep 1
lag_sample loaded
wait "$LOAD" || true
tail -n 12 "$WORK/lag-run.txt"
echo "== publication lag, otherwise idle"
lag_sample idle
curl -fs "http://127.0.0.1:$PUBLISHED_PORT/metrics" | grep -E '^regis_publish' | sort
