#!/usr/bin/env bash
# Chaos run of `regis serve` (issue 14; benches/RESULTS.md, "Chaos run (issue 14)").
#
#   benches/chaos.sh                 # builds target/release/regis if needed
#   CHAOS_WRITERS=16 CHAOS_PORT=18095 benches/chaos.sh
#
# One register (`serve --demo`, element) on a small tmpfs, in a private mount namespace (as
# root `unshare --mount`, otherwise `unshare --user --map-root-user --mount`), so the mount
# goes when the script ends, however it ends. Meanwhile:
#   - writers (16) post batches of 1 to 200 entries, each key new;
#   - readers GET a record, an acknowledged record, its proof, an inclusion proof and the
#     checkpoint in a loop;
#   - slow readers (3) hold `download-rsf` connections that read 1 KiB every 0.2 s;
#   - the tmpfs fills (no reserve: real ENOSPC), is grown, shrunk to what is used plus 2 MiB,
#     fills again, grows; the server is killed with SIGKILL amid writes and restarted with
#     the default reserve (2% plus 48 MiB for merges); the disk fills to the reserve, grows.
# Then: every acknowledged entry at its number with its key and item hash; every checkpoint
# seen (receipts and reads) signed by the register's key, one root per size, and consistent
# with the last (RFC 9162, checked here); `regis fsck` clean. Last, two COPIES of the register
# (bytes flipped in the entry/item file and hash file; in the index databases): `regis fsck`
# must not call them clean, and the copy served must answer each checked record, item, entry
# and proof with the original's bytes or a 500 `corrupt` / 503, never other bytes with 200.
# Prints the counts; exits 1 if any must-be-zero count is not.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGIS=${REGIS:-$ROOT/target/release/regis}

if [[ -z ${CHAOS_IN_NAMESPACE:-} ]]; then
    (cd "$ROOT" && cargo build --release -p regis)
    if [[ $(id -u) == 0 ]]; then
        namespace=(unshare --mount --propagation private)
    else
        namespace=(unshare --user --map-root-user --mount)
    fi
    exec "${namespace[@]}" env CHAOS_IN_NAMESPACE=1 REGIS="$REGIS" "$0" "$@" || {
        echo "chaos.sh needs a private mount namespace: ${namespace[*]} failed" >&2
        exit 1
    }
fi

source "$ROOT/benches/common.sh"
bench_start chaos python3 curl mount "$REGIS"
python3 -c 'import cryptography' 2>/dev/null || { echo "missing: python3 cryptography" >&2; exit 1; }
mkdir "$WORK/data"
mount -t tmpfs -o size=24m tmpfs "$WORK/data"
trap 'umount "$WORK/data" 2>/dev/null || true; bench_stop' EXIT
echo "== chaos: $REGIS, data on a 24 MiB tmpfs"

python3 - "$REGIS" "$WORK" "${CHAOS_PORT:-0}" "${CHAOS_WRITERS:-16}" <<'PY'
import base64, hashlib, http.client, json, os, random, shutil, signal, socket
import subprocess, sys, threading, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

REGIS, WORK, PORT, WRITERS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = PORT or free_port()
COPY_PORT = free_port()
DATA = os.path.join(WORK, "data")
B = "/registers/element"
T0 = time.time()
lock = threading.Lock()
stop = threading.Event()       # writers and readers
acks = {}                      # entry number -> (key, item hash)
checkpoints = {}               # size -> root (bytes), from receipts and reads
texts = set()                  # every checkpoint text seen
forks = []
counts = {}                    # (who, status, code) -> n
bad = []                       # answers the contract does not allow
messages = []                  # the first distinct disk-full messages
down = threading.Event()       # the server is being killed or restarted
epoch = [0]                    # bumped at each kill


def log(*what):
    print(f"[{time.time() - T0:6.1f}s]", *what, flush=True)


def count(who, status, code):
    with lock:
        counts[(who, status, code)] = counts.get((who, status, code), 0) + 1


def request(method, path, body=None, headers=None, port=None, timeout=60):
    """(status, headers, body) or None if the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port or PORT, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except Exception:
        return None


def note_checkpoint(text):
    lines = text.split("\n")
    size, root = int(lines[1]), base64.b64decode(lines[2])
    with lock:
        texts.add(text)
        old = checkpoints.setdefault(size, root)
        if old != root:
            forks.append(size)


def unexpected(who, status, body, epoch_at_start):
    """Files a failed exchange: a dropped connection is expected only around the kill."""
    if status is None:
        if down.is_set() or epoch[0] != epoch_at_start:
            count(who, "dropped", "around the kill")
        else:
            count(who, "dropped", "unexpected")
            bad.append(f"{who}: connection dropped")
        return
    code = error_code(body)
    if code == "disk-full":
        # The reserve's refusal, or a write that failed in the store.
        message = json.loads(body)["error"]["message"]
        code += "/reserve" if "refused before anything" in message else "/store"
        with lock:
            if len(messages) < 12 and message not in messages:
                messages.append(message)
    count(who, status, code)
    if status in (503, 507):
        return
    if status >= 400:
        bad.append(f"{who}: {status} {body[:200]!r}")


def writer(n, token):
    rng = random.Random(n)
    i = 0
    while not stop.is_set():
        i += 1
        size = rng.choice([1, 1, 10, 100, 150, 200])
        keys = [f"c{n}-{i}-{j}" for j in range(size)]
        body = json.dumps([{"key": k, "item": {"element": k, "name": f"Chaos {k} " + "x" * rng.randrange(200),
                                                "atomic-number": str(j)}} for j, k in enumerate(keys)])
        at = epoch[0]
        answer = request("POST", f"{B}/entries", body,
                         {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        if answer and answer[0] == 200:
            receipt = json.loads(answer[2])
            with lock:
                for k, e in zip(keys, receipt["entries"]):
                    acks[int(e["entry-number"])] = (k, e["item-hash"])
            count("write", 200, None)
            note_checkpoint(receipt["checkpoint"])
            continue
        status, _, rbody = answer if answer else (None, None, b"")
        unexpected("write", status, rbody, at)
        if status == 503 and error_code(rbody) not in ("disk-full", "disk-error", "busy", "stopping"):
            bad.append(f"write: {status} {rbody[:200]!r}")
        time.sleep(0.05)


def reader(n):
    rng = random.Random(1000 + n)
    while not stop.is_set():
        with lock:
            known = rng.choice(list(acks.items())) if acks and rng.random() < 0.7 else None
        paths = [f"{B}/records/Fe", f"{B}/records/Fe/proof", f"{B}/log/checkpoint"]
        if known:
            number, (key, _) = known
            paths += [f"{B}/records/{key}", f"{B}/entries/{number}"]
        for path in paths:
            at = epoch[0]
            answer = request("GET", path)
            if answer and answer[0] == 200:
                count("read", 200, None)
                if path.endswith("checkpoint"):
                    note_checkpoint(answer[2].decode())
            else:
                status, _, rbody = answer if answer else (None, None, b"")
                unexpected("read", status, rbody, at)
                if status == 503 and error_code(rbody) not in ("busy", "stopping"):
                    bad.append(f"read {path}: 503 {rbody[:200]!r}")
        time.sleep(0.01)


def slow_reader(n):
    while not stop.is_set():
        at = epoch[0]
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(60)
            s.connect(("127.0.0.1", PORT))
            s.sendall(f"GET {B}/download-rsf HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(1024)
            status = int(head.split(b" ")[1])
            count("slow", status, None)
            if status >= 500 and status != 503:
                bad.append(f"slow reader: {head[:200]!r}")
            while not stop.is_set() and s.recv(1024):
                time.sleep(0.2)
            s.close()
        except (OSError, IndexError, ValueError):
            if not (down.is_set() or epoch[0] != at):
                count("slow", "dropped", "timeout or cut")
            time.sleep(0.2)


starts = [0]
servers = []  # every server started, killed at exit whatever happens


def start_server(config, data=DATA, port=None, must=True):
    starts[0] += 1
    out = open(os.path.join(WORK, f"serve-{starts[0]}.log"), "ab")
    proc = subprocess.Popen([REGIS, "serve", "--demo", "--data", data, "--listen", f"127.0.0.1:{port or PORT}",
                             "--config", config], stdout=out, stderr=out, env=dict(os.environ, RUST_LOG="warn"))
    for _ in range(600):
        if proc.poll() is not None:
            break
        answer = request("GET", "/healthz", port=port)
        if answer and answer[0] == 200 and proc.poll() is None:
            servers.append(proc)
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    tail = open(os.path.join(WORK, f"serve-{starts[0]}.log"), errors="replace").read()[-600:]
    if must:
        sys.exit(f"the server did not start: {tail}")
    log(f"the server did not start: {tail}")
    return None


def config(name, limits):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write("[limits]\nmax-register-percent = 100\n" + limits + "\n")
    return path


def df():
    st = os.statvfs(DATA)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def resize(mib):
    # Shrinking below what is used fails: then a little larger.
    while subprocess.run(["mount", "-o", f"remount,size={mib}m", "tmpfs", DATA]).returncode != 0:
        mib += 2
    log(f"tmpfs now {mib} MiB ({df()[1] >> 20} MiB free)")
    return mib


def refusals():
    with lock:
        return sum(v for (who, status, code), v in counts.items() if who == "write" and status in (503, 507))


def acked():
    with lock:
        return len(acks)


def wait_for(what, condition, bound=60):
    start = time.time()
    while not condition():
        if time.time() - start > bound:
            log(f"gave up waiting for {what} after {bound} s")
            return False
        time.sleep(0.05)
    return True


def readyz():
    answer = request("GET", "/readyz")
    if not answer:
        return "no answer"
    try:
        body = json.loads(answer[2])
    except Exception:
        return f"{answer[0]} (not JSON)"
    if DATA in answer[2].decode() or os.path.basename(WORK) in answer[2].decode():
        bad.append(f"/readyz names the data directory: {answer[2][:300]!r}")
    return f"{answer[0]} " + ",".join(p["state"] for p in body.get("problems", []))


def verify_consistency(m, n, proof, old, new):
    """RFC 9162 2.1.4.2."""
    h = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()
    if m == n:
        return not proof and old == new
    if not proof:
        return False
    if m & (m - 1) == 0:
        proof = [old] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = h(c, fr), h(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = h(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old and sr == new and sn == 0


def verify_signature(text, origin, vkey):
    name, keyhash, key = vkey.split("+", 2)
    raw = base64.b64decode(key)
    assert raw[0] == 1, vkey
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    message, signatures = text.split("\n\n", 1)
    assert message.split("\n")[0] == origin, text
    for line in signatures.strip("\n").split("\n"):
        _, signer, sig = line.split(" ")
        sig = base64.b64decode(sig)
        if signer == name and sig[:4].hex() == keyhash:
            public.verify(sig[4:], (message + "\n").encode())
            return True
    return False


def get_json(path, port=None):
    answer = request("GET", path, port=port)
    assert answer and answer[0] == 200, (path, answer and answer[:1], answer and answer[2][:300])
    return json.loads(answer[2])


def stored_entries(size):
    stored, start = {}, 1
    while start <= size:
        page = get_json(f"{B}/entries?start={start}&limit=5000")
        assert page, start
        for e in page:
            stored[int(e["entry-number"])] = (e["key"], e["item-hash"][0])
        start += len(page)
    return stored


def main():
    global server
    # -- the run
    no_reserve = config("no-reserve.toml", "reserve-free-percent = 0")
    with_reserve = config("reserve.toml", "reserve-free-percent = 2")
    server = start_server(no_reserve)
    token = subprocess.run([REGIS, "token", "--data", DATA, "--register", "element"], check=True,
                           capture_output=True, text=True).stdout.strip().split("\n")[-1]
    threads = [threading.Thread(target=writer, args=(n, token), daemon=True) for n in range(WRITERS)]
    threads += [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(4)]
    threads += [threading.Thread(target=slow_reader, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    readiness = []

    def cycle(label, bound=60):
        before = refusals()
        ok = wait_for(f"{label}: the disk to fill", lambda: refusals() >= before + 20, bound)
        readiness.append((label, readyz()))
        log(f"{label}: {acked()} acknowledged, {refusals()} refused, {df()[1] >> 10} KiB free, /readyz {readiness[-1][1]}")
        return ok

    def resumed(label, bound=60):
        before = acked()
        ok = wait_for(f"{label}: writes to resume", lambda: acked() >= before + 1000, bound)
        log(f"{label}: writes resumed: {acked()} acknowledged; /readyz {readyz()}")
        return ok

    cycle("fill 1 (no reserve)")
    resize(48)
    resumed("grown to 48 MiB")
    for n in (2, 3, 4):
        used = resize(((df()[0] - df()[1]) >> 20) + 2)
        cycle(f"fill {n} (shrunk to used + 2 MiB)")
        resumed(f"grown to {resize(used + 24)} MiB")
    # kill -9 amid writes, restart with the default reserve
    down.set()
    epoch[0] += 1
    server.send_signal(signal.SIGKILL)
    server.wait()
    log(f"killed with SIGKILL; {acked()} acknowledged")
    server = start_server(with_reserve)
    down.clear()
    log("restarted with a 2% reserve")
    for n in (5, 6):
        cycle(f"fill {n} (2% reserve)")
        # The reserve is 2% plus 48 MiB of headroom for merges.
        used = (df()[0] - df()[1]) >> 20
        resumed(f"grown to {resize(used + 80)} MiB")
    resize(256)
    time.sleep(10)  # a steady stretch: writers, readers and slow readers together
    log(f"after a steady stretch: {acked()} acknowledged")
    with_reserve_log = open(os.path.join(WORK, f"serve-{starts[0]}.log"), errors="replace").read()
    enospc_with_reserve = with_reserve_log.count("No space left on device")
    errors = {}
    for line in with_reserve_log.splitlines():
        if " ERROR " in line or " WARN " in line:
            what = line.split(" ", 1)[-1][:240]
            errors[what] = errors.get(what, 0) + 1
    for what, n in sorted(errors.items(), key=lambda e: -e[1])[:8]:
        log(f"server log after the restart: {n} x {what}")
    stop.set()
    for t in threads[:WRITERS + 4]:
        t.join()
    log(f"writers and readers stopped; /readyz {readyz()}")

    # -- checks against the running server
    meta = get_json(f"{B}/register")
    origin, vkey = meta["log-origin"], meta["log-public-key"]
    current = request("GET", f"{B}/log/checkpoint")[2].decode()
    note_checkpoint(current)
    bad_signatures = [t for t in texts if not verify_signature(t, origin, vkey)]
    size, root = int(current.split("\n")[1]), base64.b64decode(current.split("\n")[2])
    stored = stored_entries(size)
    lost = [n for n, (key, item) in acks.items() if stored.get(n) != (key, item)]
    inconsistent = []
    for old in sorted(checkpoints):
        if old == 0 or old > size:
            inconsistent += [old] if old > size else []
            continue
        nodes = get_json(f"{B}/proof/consistency/{old}/{size}/merkle:sha-256")["merkle-consistency-nodes"]
        nodes = [bytes.fromhex(x.split(":")[1]) for x in nodes]
        if not verify_consistency(old, size, nodes, checkpoints[old], root):
            inconsistent.append(old)
    log(f"final size {size}; {len(checkpoints)} checkpoints checked")

    # Originals of a sample, for the corrupted copies.
    rng = random.Random(7)
    sample = rng.sample(sorted(acks), min(400, len(acks)))
    targets = sample[:40]       # their bytes are flipped in the copy
    paths = []
    for n in sample:
        key, item = acks[n]
        paths += [f"{B}/records/{key}", f"{B}/items/{item}", f"{B}/entries/{n}", f"{B}/proof/entries/{n}/{size}/merkle:sha-256"]
    paths += [f"{B}/log/checkpoint", f"{B}/records/Fe/proof"]
    original = {p: request("GET", p) for p in paths}
    assert all(a and a[0] == 200 for a in original.values())
    server.send_signal(signal.SIGTERM)
    server.wait()
    data_fsck = subprocess.run([REGIS, "fsck", "--data", DATA], capture_output=True, text=True)
    log(f"fsck of the data directory: exit {data_fsck.returncode} {(data_fsck.stdout + data_fsck.stderr).strip()[-300:]}")

    def flip(path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0x20]))

    copies = {}
    for name in ("files", "indexes"):
        copy = os.path.join(WORK, f"copy-{name}")
        shutil.copytree(DATA, copy)
        reg = os.path.join(copy, "registers", "element")
        flipped = 0
        if name == "files":
            data = open(os.path.join(reg, "data"), "rb").read()
            for n in targets:
                key = acks[n][0].encode()
                at = data.find(b'"element":"' + key + b'"')
                if at < 0:
                    at = data.find(key)
                if at >= 0:
                    flip(os.path.join(reg, "data"), at + 12 + rng.randrange(len(key)))
                    flipped += 1
            for _ in range(20):
                flip(os.path.join(reg, "data"), rng.randrange(len(data)))
                flipped += 1
            hashes = os.path.getsize(os.path.join(reg, "user.hashes"))
            for _ in range(5):
                flip(os.path.join(reg, "user.hashes"), rng.randrange(hashes))
                flipped += 1
        else:
            for db in sorted(os.listdir(reg)):
                if db.endswith(".redb"):
                    length = os.path.getsize(os.path.join(reg, db))
                    for _ in range(10):
                        flip(os.path.join(reg, db), rng.randrange(length))
                        flipped += 1
        fsck = subprocess.run([REGIS, "fsck", "--data", copy], capture_output=True, text=True)
        if fsck.returncode == 101:
            panic = [l for l in fsck.stderr.splitlines() if "panicked" in l or l.startswith("called")]
            log(f"fsck of the copy panicked: {' '.join(panic)[:400]}")
        served = start_server(with_reserve, data=copy, port=COPY_PORT, must=False)
        same = corrupt = unavailable = wrong = 0
        for p in paths if served else []:
            a = request("GET", p, port=COPY_PORT)
            if a and a[0] == 200 and a[2] == original[p][2]:
                same += 1
            elif a and a[0] == 500 and error_code(a[2]) == "corrupt":
                corrupt += 1
            elif a and a[0] == 503:
                unavailable += 1
            else:
                wrong += 1
                if wrong <= 5:
                    log(f"copy {name}: {p}: {a and a[0]} {a and a[2][:200]!r}")
        if served:
            served.send_signal(signal.SIGTERM)
            served.wait()
        copies[name] = dict(started=bool(served), flipped=flipped, fsck_exit=fsck.returncode, fsck_says=(fsck.stdout + fsck.stderr).strip()[-200:],
                            same=same, corrupt=corrupt, unavailable=unavailable, wrong=wrong)
        log(f"copy with flips in the {name}: {copies[name]}")

    # -- the counts
    fives = {k: v for k, v in counts.items() if isinstance(k[1], int) and k[1] >= 500}
    other5xx = sum(v for (who, status, code), v in fives.items() if status not in (503, 507))
    print()
    print("== chaos counts")
    print(f"acknowledged entries        {len(acks)}")
    print(f"lost                        {len(lost)}")
    print(f"forks                       {len(set(forks))}")
    print(f"checkpoints inconsistent    {len(inconsistent)}")
    print(f"checkpoints badly signed    {len(bad_signatures)}")
    print(f"5xx other than 503/507      {other5xx}")
    print(f"contract breaches (listed)  {len(bad)}")
    for (who, status, code), v in sorted(counts.items(), key=str):
        print(f"  {who:6} {status!s:8} {code!s:22} {v}")
    print(f"/readyz after each fill     {readiness}")
    print(f"ENOSPC logged with reserve  {enospc_with_reserve}")
    print(f"fsck of the data            exit {data_fsck.returncode}")
    for name, c in copies.items():
        print(f"copy ({name} flipped)      fsck exit {c['fsck_exit']}; {c['same']} same, {c['corrupt']} corrupt 500, "
              f"{c['unavailable']} 503, {c['wrong']} WRONG of {len(paths)}"
              + (" (fsck PANICKED)" if c["fsck_exit"] == 101 else "")
              + ("" if c["started"] else " (the server did not start on it)"))
    print(f"time                        {time.time() - T0:.1f} s")
    for message in messages:
        print("  disk-full message:", message)
    for line in bad[:20]:
        print("  breach:", line)
    failed = (lost or forks or data_fsck.returncode or inconsistent or bad_signatures or other5xx or bad
              or any(c["fsck_exit"] in (0, 101) or c["wrong"] for c in copies.values()))
    sys.exit(1 if failed else 0)

try:
    main()
finally:
    stop.set()
    for proc in servers:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

PY
