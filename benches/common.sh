# Sourced by the load scripts of benches/, not run: the start they share.
#
#   bench_start NAME TOOL...
#
# makes WORK, a new directory /tmp/regis-NAME.XXXXXX; on exit, kills every PID the script put
# in STOP_PIDS and removes WORK; checks that each TOOL is there; prints the machine (CPU,
# cores, memory), the date and the load average.

STOP_PIDS=()

bench_stop() {
    local pid
    for pid in "${STOP_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

bench_start() {
    local name=$1 tool
    shift
    WORK=$(mktemp -d "/tmp/regis-$name.XXXXXX")
    trap bench_stop EXIT
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
    done
    echo "== machine"
    grep -m1 'model name' /proc/cpuinfo
    echo "nproc $(nproc); $(grep MemTotal /proc/meminfo)"
    date -u
    uptime
}

# Waits (up to 10 s) until the server at URL answers its readiness check.
wait_ready() {
    local _
    for _ in $(seq 100); do
        curl -fs "$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "no answer from $1/readyz" >&2
    return 1
}

# The start of a wrk Lua script that numbers its threads (`tid`, from 1) and counts each
# thread's requests (`counter`).
lua_thread_prelude() {
    cat <<'LUA'
local counter = 0
local threads = 0
setup = function(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
LUA
}
