#!/usr/bin/env bash
# Read-path load benchmark of `regis serve` (benches/RESULTS.md, "regis-server").
#
#   benches/http-load.sh [ENTRIES] [SECONDS]      # defaults: 100000 entries, 10 s per run
#
# Needs wrk, nginx (apt-get install -y wrk nginx-light) and curl, and the release builds:
#   cargo build --release -p regis
#   cargo build --release -p regis-store --example bulk_load
#
# It loads regis-model's synthetic register of ENTRIES user entries (keys E00000001 ...) into a
# fresh directory, runs `regis serve` on 127.0.0.1:$REGIS_PORT and nginx on 127.0.0.1:$NGINX_PORT
# (serving the bytes of tile 0/000 fetched from regis as a static file), then runs wrk with
# 2 threads and 64 connections against:
#   1. B/records/{key}/proof, each request a random key of the register (wrk Lua script);
#   2. B/log/tile/0/000 from regis;
#   3. the same tile bytes from nginx, in the same run (the peer);
#   4. /healthz from regis: what any request costs through its HTTP stack, for scale.
# After the runs it prints regis's VmHWM (peak RSS). Everything listens on 127.0.0.1 only; every
# step is bounded by `timeout`; the servers it started are stopped by their PIDs on exit.
set -euo pipefail

ENTRIES=${1:-100000}
SECONDS_PER_RUN=${2:-10}
REGIS_PORT=${REGIS_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}
BULK=${BULK:-$ROOT/target/release/examples/bulk_load}
source "$ROOT/benches/common.sh"
bench_start http-load wrk nginx curl "$REGIS" "$BULK"

echo "== load $ENTRIES synthetic entries"
timeout 600 "$BULK" synthetic "$WORK/synthetic.rsf" "$ENTRIES"
/usr/bin/env time -f '%e s, peak RSS %M kB' \
    timeout 900 "$REGIS" load --data "$WORK/data" --register synthetic "$WORK/synthetic.rsf" \
    | tail -n 1
rm "$WORK/synthetic.rsf"

echo "== serve"
# Without its per-request log line (an access log, at `info`), as nginx runs without its access
# log below; RUST_LOG=info measures it with one.
RUST_LOG=${RUST_LOG:-warn} "$REGIS" serve --data "$WORK/data" --listen "127.0.0.1:$REGIS_PORT" \
    >"$WORK/regis.log" 2>&1 &
REGIS_PID=$!
STOP_PIDS+=("$REGIS_PID")
B="http://127.0.0.1:$REGIS_PORT/registers/synthetic"
wait_ready "http://127.0.0.1:$REGIS_PORT"
curl -fs "$B/log/checkpoint"
echo "regis RSS after start: $(grep VmRSS /proc/$REGIS_PID/status)"

# The peer: the same tile bytes, a static file behind nginx.
mkdir -p "$WORK/www/tile/0" "$WORK/nginx"
curl -fs "$B/log/tile/0/000" -o "$WORK/www/tile/0/000"
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
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        default_type application/octet-stream;
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
STOP_PIDS+=("$NGINX_PID")
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$NGINX_PORT/tile/0/000" -o /dev/null && break
    sleep 0.1
done
cmp "$WORK/www/tile/0/000" <(curl -fs "http://127.0.0.1:$NGINX_PORT/tile/0/000")
echo "tile 0/000: $(stat -c %s "$WORK/www/tile/0/000") bytes"

cat >"$WORK/keys.lua" <<EOF
-- A random key of the register for each request.
math.randomseed(1)
request = function()
    return wrk.format("GET", string.format("/registers/synthetic/records/E%08d/proof",
        math.random(1, $ENTRIES)))
end
EOF
curl -fs "$B/records/E00000001/proof" -o /dev/null

run() {
    echo "== $1"
    shift
    timeout $((SECONDS_PER_RUN + 30)) wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency "$@"
    uptime
}
run "regis: records/{random key}/proof" -s "$WORK/keys.lua" "http://127.0.0.1:$REGIS_PORT"
run "regis: log/tile/0/000" "$B/log/tile/0/000"
run "nginx: the same tile bytes, static" "http://127.0.0.1:$NGINX_PORT/tile/0/000"
run "regis: /healthz (a request's fixed cost: no store read)" "http://127.0.0.1:$REGIS_PORT/healthz"
echo "regis after the runs: $(grep -E 'VmHWM|VmRSS' /proc/$REGIS_PID/status | tr -s ' \n' ' ')"
