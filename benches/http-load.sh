#!/usr/bin/env bash
# Read-path load benchmark of `regis serve` (benches/RESULTS.md, "regis-server"): every figure of
# "reads at the speed of static files, in bounded memory", each with its peer in the same run.
#
#   benches/http-load.sh [ENTRIES] [SECONDS]      # defaults: 100000 entries, 10 s per wrk run
#
# Needs wrk, nginx (apt-get install -y wrk nginx-light) and curl, and the release builds
# ($REGIS, $BULK):
#   cargo build --release -p regis
#   cargo build --release -p regis-store --example bulk_load
#
# On regis-model's synthetic register of ENTRIES (at least 256) user entries, keys E00000001 ...:
#   1. loading: the RSF's raw fsync'd copy (`bulk_load fsync-reference`, batch = document: the
#      peer), then `regis load` of the same file: entries/s, peak RSS, load ÷ copy;
#   2. reads: `regis serve` on 127.0.0.1:$REGIS_PORT and nginx on 127.0.0.1:$NGINX_PORT serving
#      the bytes of tile 0/000 and entry bundle 000 fetched from regis as static files; wrk,
#      2 threads, 64 connections, SECONDS each, p50/p99 from --latency, failed requests flagged:
#      a. B/records/{key}/proof and .../proof.tlog-proof, a random key each request (Lua);
#      b. B/proof/entries/{n}/ENTRIES and B/proof/consistency/{m}/ENTRIES (GOV.UK proofs);
#      c. B/records/{key} and B/entries?start={n}&limit=100, plain and with Accept-Encoding gzip;
#      d. B/log/tile/0/000 against nginx's copy of its bytes, three rounds in turn (nginx's
#         first run of the tile, before all others, is the peer of every regis run);
#      e. entry bundle B/log/tile/entries/000 with Accept-Encoding gzip against nginx's copy,
#         gzip level 1;
#      f. If-None-Match with each server's ETag of the tile (304s), and of B/records/E00000001
#         if regis sends one; a missing ETag or an answer other than 304 is reported, not run;
#      g. /healthz: what any request costs through regis's HTTP stack, for scale;
#   3. server memory: regis's VmHWM after the wrk runs, then after 64 concurrent whole
#      B/download-rsf downloads (checked: all 200, all the same size);
#   4. clients: `regis verify --full` and `regis mirror` against the server, with the key
#      `regis key` prints from the data directory: entries/s, peak RSS, mirror ÷ load;
# then two summary tables (Markdown) to paste. Everything listens on 127.0.0.1 only; every step
# is bounded by `timeout`; the servers it started are stopped by their PIDs on exit.
set -euo pipefail
export LC_ALL=C # a decimal point in EPOCHREALTIME, awk and printf

ENTRIES=${1:-100000}
SECONDS_PER_RUN=${2:-10}
REGIS_PORT=${REGIS_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
DOWNLOADS=64
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
BULK=${BULK:-$ROOT/target/release/examples/bulk_load}
# Tile 0/000 and bundle 000 must be full ones: 256 entries.
((ENTRIES >= 256)) || { echo "ENTRIES must be at least 256" >&2; exit 1; }
source "$ROOT/benches/common.sh"
bench_start http-load wrk nginx curl "$REGIS" "$BULK"
# wait_ready and the peer would otherwise measure whatever else answers on these ports.
for port in "$REGIS_PORT" "$NGINX_PORT"; do
    if curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$port/"; then
        echo "127.0.0.1:$port is in use: set REGIS_PORT / NGINX_PORT" >&2
        exit 1
    fi
done

# A ÷ B to two decimals (two digits below 0.1), or n/a without B.
ratio() {
    awk -v a="$1" -v b="${2:-0}" 'BEGIN {
        if (b > 0) printf (a / b >= 0.1 ? "%.2f×" : "%.2g×"), a / b; else printf "n/a" }'
}

# Runs a command under /usr/bin/time; sets SECS (wall, to the ms) and PEAK_KB (its peak RSS).
timed() {
    local start=$EPOCHREALTIME
    /usr/bin/env time -o "$WORK/time.txt" -f '%M' timeout 900 "$@"
    SECS=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    PEAK_KB=$(tail -n 1 "$WORK/time.txt")
}

# ENTRIES / SECS, as entries/s.
rate() { awk -v n="$ENTRIES" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }'; }

# The summary tables' rows, in the order measured.
READ_ROWS=()
OTHER_ROWS=()
# row TABLE CELL...: adds a Markdown row of the CELLs to the array TABLE.
row() {
    local -n rows=$1
    shift
    rows+=("$(printf '| %s ' "$@")|")
}

echo "== 1. loading $ENTRIES synthetic entries"
timeout 600 "$BULK" synthetic "$WORK/synthetic.rsf" "$ENTRIES"
# Written-back pages of the file just made are not left to slow either timed step.
timeout 300 sync
COPY=$(timeout 600 "$BULK" fsync-reference "$WORK/synthetic.rsf" "$WORK/copy.rsf" "$ENTRIES")
echo "$COPY"
COPY_RATE=$(awk '{ print $(NF - 1) }' <<<"$COPY")
timeout 300 sync
timed "$REGIS" load --data "$WORK/data" --register synthetic "$WORK/synthetic.rsf"
LOAD_RATE=$(rate)
r=$(ratio "$LOAD_RATE" "$COPY_RATE")
echo "regis load: $SECS s, $LOAD_RATE entries/s, peak RSS $PEAK_KB kB;" \
    "÷ raw fsync'd copy ($COPY_RATE entries/s) = $r"
row OTHER_ROWS "raw fsync'd copy of the RSF (2 fsyncs)" "$COPY_RATE entries/s" - - -
row OTHER_ROWS "regis load" "$LOAD_RATE entries/s" "$PEAK_KB kB" "raw fsync'd copy" "$r"
rm "$WORK/synthetic.rsf"
# The pinned verifier key, from the custodian's side (the data directory), not the server.
VKEY=$(timeout 60 "$REGIS" key --data "$WORK/data" --register synthetic |
    sed -n 's/^log-public-key: //p')
echo "verifier key: $VKEY"

echo "== serve"
# Section 3's downloads all stream at once: the limit on them is pinned, not left to a default.
cat >"$WORK/regis.toml" <<EOF
[limits]
max-rsf-streams = $DOWNLOADS
EOF
# Without its per-request log line (an access log, at `info`), as nginx runs without its access
# log below; RUST_LOG=info measures it with one.
RUST_LOG=${RUST_LOG:-warn} "$REGIS" serve --config "$WORK/regis.toml" --data "$WORK/data" \
    --listen "127.0.0.1:$REGIS_PORT" >"$WORK/regis.log" 2>&1 &
REGIS_PID=$!
STOP_PIDS+=("$REGIS_PID")
P=/registers/synthetic
B="http://127.0.0.1:$REGIS_PORT$P"
N="http://127.0.0.1:$NGINX_PORT"
wait_ready "http://127.0.0.1:$REGIS_PORT"
curl -fs "$B/log/checkpoint"
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$REGIS_PID/status"; }
START_HWM=$(hwm)
echo "regis VmHWM after start: $START_HWM kB"

# The peers: the same tile and bundle bytes, static files behind nginx.
mkdir -p "$WORK/www/tile/0" "$WORK/www/tile/entries" "$WORK/nginx"
curl -fs "$B/log/tile/0/000" -o "$WORK/www/tile/0/000"
curl -fs "$B/log/tile/entries/000" -o "$WORK/www/tile/entries/000"
chmod -R a+rX "$WORK"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    gzip on;
    gzip_comp_level 1;
    gzip_types *;
    gzip_vary on;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        default_type application/octet-stream;
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
STOP_PIDS+=("$!")
for _ in $(seq 50); do
    curl -fs "$N/tile/0/000" -o /dev/null && break
    sleep 0.1
done
for f in tile/0/000 tile/entries/000; do
    cmp "$WORK/www/$f" <(curl -fs "$N/$f")
    echo "$f: $(stat -c %s "$WORK/www/$f") bytes"
done

# Writes a wrk Lua script, FILE, that GETs FORMAT with its %d a random number in LOW..HIGH.
random_lua() {
    cat >"$1" <<EOF
math.randomseed(1)
request = function()
    return wrk.format("GET", string.format("$2", math.random($3, $4)))
end
EOF
}
random_lua "$WORK/proof.lua" "$P/records/E%08d/proof" 1 "$ENTRIES"
random_lua "$WORK/tlog-proof.lua" "$P/records/E%08d/proof.tlog-proof" 1 "$ENTRIES"
random_lua "$WORK/entry-proof.lua" "$P/proof/entries/%d/$ENTRIES/merkle:sha-256" 1 "$ENTRIES"
random_lua "$WORK/consistency.lua" "$P/proof/consistency/%d/$ENTRIES/merkle:sha-256" 1 \
    $((ENTRIES - 1))
random_lua "$WORK/record.lua" "$P/records/E%08d" 1 "$ENTRIES"
# Pages that start at most 99 before the end: 100 entries each.
random_lua "$WORK/page.lua" "$P/entries?start=%d&limit=100" 1 $((ENTRIES - 99))
for path in "records/E00000001/proof" "records/E00000001/proof.tlog-proof" \
    "proof/entries/1/$ENTRIES/merkle:sha-256" "proof/consistency/1/$ENTRIES/merkle:sha-256" \
    "records/E00000001" "entries?start=1&limit=100"; do
    curl -fs "$B/$path" -o /dev/null
done

declare -A RPS
TILE_PEER="nginx tile/0/000"
ERRORS=0
# Runs wrk as NAME and prints its line: req/s, p50, p99, ÷ PEER's req/s (a run before it; none
# if empty) and ÷ the nginx tile's; a run with non-2xx/3xx answers or socket errors is flagged.
read_run() {
    local name=$1 peer=$2 out="$WORK/wrk.txt" rps p50 p99 requests bad sockets
    local peer_ratio=- tile_ratio=- line
    shift 2
    timeout $((SECONDS_PER_RUN + 30)) wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency "$@" >"$out"
    read -r rps p50 p99 requests bad sockets < <(awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            return v * 1000
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        / requests in / { requests = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(/[^0-9 ]/, ""); for (i = 1; i <= NF; i++) sockets += $i }
        END { printf "%.0f %.2f %.2f %d %d %d\n", rps, p50, p99, requests, bad, sockets }' "$out")
    RPS[$name]=$rps
    line=$(printf '%-46s %8s req/s  p50 %7s ms  p99 %7s ms' "$name" "$rps" "$p50" "$p99")
    if [[ -n $peer ]]; then
        peer_ratio=$(ratio "$rps" "${RPS[$peer]:-}")
        line+="  ÷ $peer: $peer_ratio"
    fi
    if [[ $name != "$TILE_PEER" ]]; then
        tile_ratio=$(ratio "$rps" "${RPS[$TILE_PEER]}")
        [[ $peer == "$TILE_PEER" ]] || line+="  ÷ $TILE_PEER: $tile_ratio"
    fi
    if ((bad + sockets > 0)); then
        ERRORS=$((ERRORS + 1))
        line+="  !! FAILED: $bad non-2xx/3xx, $sockets socket errors of $requests requests !!"
        name+=" !! FAILED: $bad non-2xx/3xx, $sockets socket errors"
    fi
    echo "$line"
    row READ_ROWS "$name" "$rps" "$p50" "$p99" "${peer:--}" "$peer_ratio" "$tile_ratio"
}

# How URL answers Accept-Encoding: gzip: its Content-Encoding, or identity.
encoding() {
    curl -fs -D - -o /dev/null -H 'Accept-Encoding: gzip' "$1" | tr -d '\r' |
        awk 'tolower($1) == "content-encoding:" { e = $2 } END { print (e == "" ? "identity" : e) }'
}

# Runs NAME with If-None-Match: the ETag URL sends, if it sends one and then answers 304;
# otherwise reports why not.
conditional_run() {
    local name=$1 peer=$2 url=$3 etag code why
    etag=$(curl -s -D - -o /dev/null "$url" | tr -d '\r' |
        awk 'tolower($1) == "etag:" { sub(/^[^:]*: */, ""); print }')
    if [[ -z $etag ]]; then
        why="no ETag"
    else
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$url")
        [[ $code == 304 ]] && { read_run "$name" "$peer" -H "If-None-Match: $etag" "$url"; return; }
        why="not 304 (HTTP $code to If-None-Match: $etag)"
    fi
    printf '%-46s %s: not run\n' "$name" "$why"
    row READ_ROWS "$name" "$why" - - "${peer:--}" - -
}

echo "== 2. reads: wrk, 2 threads, 64 connections, $SECONDS_PER_RUN s a run"
read_run "$TILE_PEER" "" "$N/tile/0/000"
echo "-- a. record proofs"
read_run "regis records/{key}/proof" "$TILE_PEER" -s "$WORK/proof.lua" "$B"
read_run "regis records/{key}/proof.tlog-proof" "$TILE_PEER" -s "$WORK/tlog-proof.lua" "$B"
echo "-- b. GOV.UK proofs"
read_run "regis proof/entries/{n}/$ENTRIES" "$TILE_PEER" -s "$WORK/entry-proof.lua" "$B"
read_run "regis proof/consistency/{m}/$ENTRIES" "$TILE_PEER" -s "$WORK/consistency.lua" "$B"
echo "-- c. records and pages, plain and gzip"
read_run "regis records/{key}" "$TILE_PEER" -s "$WORK/record.lua" "$B"
read_run "regis records/{key} [gzip: $(encoding "$B/records/E00000001")]" "$TILE_PEER" \
    -H "Accept-Encoding: gzip" -s "$WORK/record.lua" "$B"
read_run "regis entries?start={n}&limit=100" "$TILE_PEER" -s "$WORK/page.lua" "$B"
read_run "regis entries?start={n}&limit=100 [gzip: $(encoding "$B/entries?start=1&limit=100")]" \
    "$TILE_PEER" -H "Accept-Encoding: gzip" -s "$WORK/page.lua" "$B"
# The same bytes from both, three rounds in turn, each regis run ÷ the nginx run just before it:
# on a shared machine one nginx run alone has swung this ratio from 0.72× to 1.18×.
echo "-- d. a full hash tile, interleaved with nginx's copy"
for round in 1 2 3; do
    read_run "nginx tile/0/000 #$round" "" "$N/tile/0/000"
    read_run "regis log/tile/0/000 #$round" "nginx tile/0/000 #$round" "$B/log/tile/0/000"
done
echo "-- e. an entry bundle, gzip"
BUNDLE_PEER="nginx tile/entries/000 [gzip: $(encoding "$N/tile/entries/000")]"
read_run "$BUNDLE_PEER" "" -H "Accept-Encoding: gzip" "$N/tile/entries/000"
read_run "regis log/tile/entries/000 [gzip: $(encoding "$B/log/tile/entries/000")]" \
    "$BUNDLE_PEER" -H "Accept-Encoding: gzip" "$B/log/tile/entries/000"
echo "-- f. conditional requests (If-None-Match: 304)"
conditional_run "nginx tile/0/000 304" "" "$N/tile/0/000"
conditional_run "regis log/tile/0/000 304" "nginx tile/0/000 304" "$B/log/tile/0/000"
conditional_run "regis records/E00000001 304" "nginx tile/0/000 304" "$B/records/E00000001"
echo "-- g. a request's fixed cost: no store read"
read_run "regis /healthz" "$TILE_PEER" "http://127.0.0.1:$REGIS_PORT/healthz"
uptime

echo "== 3. server memory"
WRK_HWM=$(hwm)
echo "regis VmHWM after the wrk runs: $WRK_HWM kB"
start=$EPOCHREALTIME
pids=()
# 64 streams of the whole RSF share the cores: 1M entries' take minutes.
for i in $(seq "$DOWNLOADS"); do
    timeout $((300 + ENTRIES / 500)) curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
        "$B/download-rsf" >"$WORK/download.$i" &
    pids+=("$!")
done
# Each download's outcome is in its file, checked below.
wait "${pids[@]}" || true
SECS=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
DOWNLOAD_HWM=$(hwm)
OUTCOMES=$(cat "$WORK"/download.* | sort | uniq -c)
if [[ $(awk '{ print $1, $2 }' <<<"$OUTCOMES") == "$DOWNLOADS 200" ]]; then
    SIZE=$(awk '{ print $3 }' <<<"$OUTCOMES")
    echo "$DOWNLOADS downloads of B/download-rsf at once: all 200, $SIZE bytes each, $SECS s" \
        "($(awk -v n="$DOWNLOADS" -v b="$SIZE" -v s="$SECS" \
            'BEGIN { printf "%.0f", n * b / s / 1e6 }') MB/s in all)"
else
    ERRORS=$((ERRORS + 1))
    echo "!! FAILED: $DOWNLOADS downloads of B/download-rsf at once; (count, status, bytes):" \
        "$(paste -sd, <<<"$OUTCOMES") !!"
fi
r=$(ratio "$DOWNLOAD_HWM" "$WRK_HWM")
echo "regis VmHWM after the downloads: $DOWNLOAD_HWM kB; ÷ after the wrk runs: $r"
row OTHER_ROWS "regis VmHWM after start" - "$START_HWM kB" - -
row OTHER_ROWS "regis VmHWM after the wrk runs" - "$WRK_HWM kB" "after start" \
    "$(ratio "$WRK_HWM" "$START_HWM")"
row OTHER_ROWS "regis VmHWM after $DOWNLOADS concurrent download-rsf" - "$DOWNLOAD_HWM kB" \
    "after the wrk runs" "$r"

echo "== 4. clients"
timed "$REGIS" verify "$B" --key "$VKEY" --full
VERIFY_RATE=$(rate)
echo "regis verify --full: $SECS s, $VERIFY_RATE entries/s, peak RSS $PEAK_KB kB"
row OTHER_ROWS "regis verify --full" "$VERIFY_RATE entries/s" "$PEAK_KB kB" - -
timed "$REGIS" mirror "$B" --key "$VKEY" --data "$WORK/mirror"
MIRROR_RATE=$(rate)
r=$(ratio "$MIRROR_RATE" "$LOAD_RATE")
echo "regis mirror: $SECS s, $MIRROR_RATE entries/s, peak RSS $PEAK_KB kB;" \
    "÷ regis load ($LOAD_RATE entries/s) = $r"
row OTHER_ROWS "regis mirror" "$MIRROR_RATE entries/s" "$PEAK_KB kB" "regis load" "$r"

echo "== summary: $ENTRIES entries, $SECONDS_PER_RUN s a wrk run"
echo "| name | req/s | p50 ms | p99 ms | peer | ratio | ÷ $TILE_PEER |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${READ_ROWS[@]}"
echo
echo "| name | rate | peak RSS | peer | ratio |"
echo "|---|---|---|---|---|"
printf '%s\n' "${OTHER_ROWS[@]}"
uptime
if ((ERRORS > 0)); then
    echo "!! failed requests in $ERRORS runs: see the lines flagged !! above" >&2
    exit 1
fi
