#!/usr/bin/env bash
# `make compare`: tessera beside etcd on this machine, same load, same client, over the HTTP
# API each offers (README, "Side by side with etcd").
#
# - A 3-member etcd (Debian's etcd-server, 3.4) and a 3-node tessera (release build), all on
#   127.0.0.1, each with its own data directory under one scratch directory on the same
#   file system.
# - Load: wrk with scripts/compare.lua, 256-byte values over 1,000 keys, sent to the leader:
#   writes and linearizable reads, 1 and 64 connections. Rounds are interleaved (every
#   load, both systems, alternating which goes first), COMPARE_ROUNDS of COMPARE_SECS each.
# - Also measured in the same run: a raw loop of 256-byte write + fdatasync on the same file
#   system, and the CPU time (user + system) of the three node processes of each system
#   per operation, from /proc.
# - Prints one table (medians over rounds with each rate's range over rounds; CPU per
#   operation over all rounds) and the ratios tessera/etcd and tessera/raw fsync, each
#   also round by round; also written to $COMPARE_OUT.
# - And where one tessera write's time goes (the c=1 write rounds): the nodes' traced
#   write stages (`tessera_write_stage_duration_seconds`, see src/groups/worker/trace.rs)
#   and HTTP route latency from /metrics, read before and after each of those rounds,
#   beside wrk's mean; means per stage.
#
# Knobs: COMPARE_ROUNDS (3), COMPARE_SECS (10), COMPARE_KEYS (1000), COMPARE_VALUE (256),
# COMPARE_DIR (a fresh directory under /tmp), COMPARE_OUT (compare-results.md there),
# TESSERA_BIN (default: the release build), COMPARE_PORT (first of 12 ports, 24000; the
# run refuses to start when one is taken),
# COMPARE_TESSERA_ARGS (extra `tessera node` flags, e.g. "--runtime-threads 1").
# Every process it starts is stopped on exit; the scratch directory keeps the logs and the
# table, not the data.
set -euo pipefail

ROUNDS=${COMPARE_ROUNDS:-3}
SECS=${COMPARE_SECS:-10}
KEYS=${COMPARE_KEYS:-1000}
VALUE=${COMPARE_VALUE:-256}
PORT=${COMPARE_PORT:-24000}
read -r -a EXTRA <<<"${COMPARE_TESSERA_ARGS:-}"
HERE=$(cd "$(dirname "$0")" && pwd)
LUA="$HERE/compare.lua"
DIR=${COMPARE_DIR:-$(mktemp -d /tmp/tessera-compare-XXXXXX)}
OUT=${COMPARE_OUT:-$DIR/compare-results.md}
TESSERA=${TESSERA_BIN:-${CARGO_TARGET_DIR:-target}/release/tessera}
TICK=$(getconf CLK_TCK)

say() { echo "compare: $*" >&2; }
die() { say "$*"; exit 1; }

install_missing() {
    local missing=()
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]} (the comparison's peer and load generator)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
             && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
        || die "cannot install ${missing[*]}: install them and run again"
}

# Every process this script starts; all stopped on exit, whatever happens.
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The data goes; the logs and the table stay for a look.
    rm -rf "$DIR"/etcd[0-9] "$DIR"/tessera[0-9]
}
trap cleanup EXIT INT TERM

# user + system CPU ticks of the processes given.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        # Fields 14 and 15 of /proc/PID/stat, after the command name in parentheses.
        local rest
        rest=$(sed 's/.*) //' "/proc/$pid/stat")
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

port() { echo $((PORT + $1)); }

start_etcd() {
    local cluster="" i
    for i in 0 1 2; do
        cluster+="${cluster:+,}e$i=http://127.0.0.1:$(port $((i + 3)))"
    done
    ETCD_PIDS=()
    for i in 0 1 2; do
        etcd --name "e$i" --data-dir "$DIR/etcd$i" \
            --listen-client-urls "http://127.0.0.1:$(port "$i")" \
            --advertise-client-urls "http://127.0.0.1:$(port "$i")" \
            --listen-peer-urls "http://127.0.0.1:$(port $((i + 3)))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$(port $((i + 3)))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token tessera-compare --logger zap --log-level error \
            >"$DIR/etcd$i.log" 2>&1 &
        PIDS+=($!)
        ETCD_PIDS+=($!)
    done
    local endpoints="127.0.0.1:$(port 0),127.0.0.1:$(port 1),127.0.0.1:$(port 2)"
    for _ in $(seq 1 100); do
        ETCD_LEADER=$(etcdctl --endpoints="$endpoints" endpoint status -w json 2>/dev/null \
            | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print("http://" + s["Endpoint"])' 2>/dev/null || true)
        [ -n "$ETCD_LEADER" ] && return
        sleep 0.2
    done
    die "etcd elected no leader (logs in $DIR/etcd*.log)"
}

start_tessera() {
    TESSERA_PIDS=()
    local i j
    for i in 0 1 2; do
        local peers=()
        for j in 0 1 2; do
            [ "$i" = "$j" ] || peers+=(--peer "127.0.0.1:$(port $((j + 6)))")
        done
        "$TESSERA" node --data-dir "$DIR/tessera$i" \
            --listen "127.0.0.1:$(port $((i + 6)))" --http "127.0.0.1:$(port $((i + 9)))" \
            "${peers[@]}" --log-level warn "${EXTRA[@]}" >"$DIR/tessera$i.out" 2>"$DIR/tessera$i.log" &
        PIDS+=($!)
        TESSERA_PIDS+=($!)
    done
    for _ in $(seq 1 150); do
        TESSERA_LEADER=$(curl -sf "http://127.0.0.1:$(port 9)/v1/status" 2>/dev/null \
            | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s.get("leader_http") or "")' 2>/dev/null || true)
        [ -n "$TESSERA_LEADER" ] && return
        sleep 0.2
    done
    die "tessera elected no leader (logs in $DIR/tessera*.log)"
}

# Writes every key once, so reads find them.
fill() {
    local system=$1 url=$2
    python3 - "$system" "$url" "$KEYS" "$VALUE" <<'EOF'
import base64, concurrent.futures, json, sys, urllib.request
system, url, keys, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
value = "v" * size
def put(k):
    key = "compare/%04d" % k
    if system == "etcd":
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                           "value": base64.b64encode(value.encode()).decode()}).encode()
        req = urllib.request.Request(url + "/v3/kv/put", body, method="POST")
    else:
        req = urllib.request.Request(url + "/v1/kv/" + key, value.encode(), method="PUT")
    urllib.request.urlopen(req, timeout=10).read()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(put, range(1, keys + 1)))
EOF
}

# The write-stage and PUT-latency sums and counts of the three tessera nodes, added up:
# one "name sum count" line each (stages: see src/groups/worker/trace.rs).
stage_totals() {
    local i
    for i in 0 1 2; do
        curl -sf "http://127.0.0.1:$(port $((i + 9)))/metrics" || true
    done | python3 -c '
import re, sys
totals = {}
for line in sys.stdin:
    m = re.match(r"tessera_write_stage_duration_seconds_(sum|count)\{stage=\"(\w+)\"\} (\S+)", line)
    if m:
        kind, name, value = m.groups()
    else:
        m = re.match(r"tessera_http_request_duration_seconds_(sum|count)\{route=\"/v1/kv/\{\*key\}\",method=\"PUT\"\} (\S+)", line)
        if not m:
            continue
        kind, name, value = m.group(1), "http", m.group(2)
    totals.setdefault(name, [0.0, 0.0])[kind == "count"] += float(value)
for name, (s, c) in totals.items():
    print(name, s, int(c))'
}

# One measured run: prints "requests errors p50_us p99_us duration_us mean_us cpu_ticks";
# a tessera c=1 write run also adds its stage deltas to $DIR/stages.
measure() {
    local system=$1 mode=$2 conns=$3 url=$4
    local pids
    if [ "$system" = etcd ]; then pids=("${ETCD_PIDS[@]}"); else pids=("${TESSERA_PIDS[@]}"); fi
    local before after line traced=""
    [ "$system $mode $conns" = "tessera write 1" ] && traced=1
    [ -n "$traced" ] && stage_totals >"$DIR/stages.before"
    before=$(cpu_ticks "${pids[@]}")
    line=$(wrk -t"$([ "$conns" -gt 1 ] && echo 2 || echo 1)" -c"$conns" -d"${SECS}s" \
        --latency -s "$LUA" "$url" -- "$system" "$mode" "$KEYS" "$VALUE" | grep '^RESULT')
    after=$(cpu_ticks "${pids[@]}")
    if [ -n "$traced" ]; then
        stage_totals >"$DIR/stages.after"
        python3 - "$DIR/stages.before" "$DIR/stages.after" "${line#RESULT }" >>"$DIR/stages" <<'EOF'
import sys
read = lambda p: {n: (float(s), int(c)) for n, s, c in (l.split() for l in open(p) if l.strip())}
before, after = read(sys.argv[1]), read(sys.argv[2])
for name, (s, c) in after.items():
    s0, c0 = before.get(name, (0.0, 0))
    print(name, s - s0, c - c0)
fields = sys.argv[3].split()
requests, duration_us, mean_us = int(fields[0]), int(fields[4]), int(fields[5])
# One connection sends one request at a time, so its mean cannot exceed duration/requests;
# wrk's own mean does (5-15% above it in ordinary rounds, once 17.7 ms over 5,423 requests
# in 10 s), so the breakdown takes the smaller of the two.
mean_us = min(mean_us, duration_us / max(requests, 1))
print("wrk", mean_us / 1e6 * requests, requests)
EOF
    fi
    echo "${line#RESULT } $((after - before))"
}

raw_fsync() {
    python3 - "$DIR" "$VALUE" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "raw-fsync")
data = b"v" * int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
times = []
for _ in range(2000):
    t = time.perf_counter()
    os.write(fd, data)
    os.fdatasync(fd)
    times.append(time.perf_counter() - t)
os.close(fd)
os.unlink(path)
times.sort()
print(int(times[len(times) // 2] * 1e6), int(times[len(times) * 99 // 100] * 1e6))
EOF
}

# Every port the run listens on must be free: a node left over from an earlier run on the
# same ports would otherwise answer in place of the one this run starts (which exits,
# unable to bind), and the run would measure it.
ports_taken() {
    python3 - "$PORT" <<'EOF'
import socket, sys
first = int(sys.argv[1])
for p in range(first, first + 12):
    for kind, name in ((socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            print(f"{p}/{name}", end=" ")
        finally:
            s.close()
EOF
}

install_missing
taken=$(ports_taken)
[ -z "$taken" ] || die "ports in use: $taken(a node of an earlier run still up? 'ss -ltnup' names it; or set COMPARE_PORT)"
[ -x "$TESSERA" ] || die "no tessera binary at $TESSERA (make compare builds it: cargo build --release --bin tessera)"
mkdir -p "$DIR"
say "scratch directory $DIR"
say "$(etcd --version | head -1); tessera $("$TESSERA" --version 2>/dev/null || echo "(release build)")"
start_etcd
start_tessera
say "leaders: etcd $ETCD_LEADER, tessera $TESSERA_LEADER"
fill etcd "$ETCD_LEADER"
fill tessera "$TESSERA_LEADER"

LOADS=("write 1" "write 64" "read 1" "read 64")
RAW=()
declare -A RESULTS
for round in $(seq 1 "$ROUNDS"); do
    RAW+=("$(raw_fsync)")
    for load in "${LOADS[@]}"; do
        set -- $load
        mode=$1 conns=$2
        if [ $((round % 2)) -eq 1 ]; then order="etcd tessera"; else order="tessera etcd"; fi
        for system in $order; do
            url=$ETCD_LEADER
            [ "$system" = tessera ] && url=$TESSERA_LEADER
            result=$(measure "$system" "$mode" "$conns" "$url")
            RESULTS["$system $mode $conns"]+="$result;"
            say "round $round: $system $mode c=$conns: $result"
        done
    done
done
RAW+=("$(raw_fsync)")

python3 - "$TICK" "${RAW[*]}" "$OUT" "$ROUNDS" "$SECS" "$KEYS" "$VALUE" \
    "$(for k in "${!RESULTS[@]}"; do echo "$k=${RESULTS[$k]}"; done)" "$DIR" "${COMPARE_TESSERA_ARGS:-}" <<'EOF'
import statistics, sys
tick, raw, out, rounds, secs, keys, value, results, scratch, extra = sys.argv[1:11]
tick = int(tick)
raw = [int(x) for x in raw.split()]
raw_p50 = statistics.median(raw[0::2])
raw_p99 = statistics.median(raw[1::2])
rows = {}
anomalies = []
for line in results.strip().splitlines():
    name, runs = line.split("=", 1)
    reqs = errs = ticks = 0
    rates, p50s, p99s = [], [], []
    for run in filter(None, runs.split(";")):
        r, e, p50, p99, dur, mean, cpu = (int(x) for x in run.split())
        # One connection's mean cannot exceed duration/requests; wrk's runs 5-15% above
        # it in ordinary rounds, so only a gross excess is flagged.
        if name.endswith(" 1") and r and mean * r > dur * 1.5:
            anomalies.append(f"{name}: wrk's mean latency {mean} µs over {r:,} requests "
                             f"exceeds the {dur / 1e6:.1f} s run (one connection): its latency "
                             f"figures for that round are suspect")
        reqs += r; errs += e; ticks += cpu
        rates.append(r / (dur / 1e6)); p50s.append(p50); p99s.append(p99)
    rows[name] = dict(rate=statistics.median(rates), rates=rates, p50s=p50s,
                      p50=statistics.median(p50s),
                      p99=statistics.median(p99s), cpu=ticks / tick * 1e6 / max(reqs, 1),
                      errors=errs, requests=reqs)
lines = [f"{rounds} interleaved rounds of {secs} s per load and system; {value}-byte values "
         f"over {keys} keys, to the leader; medians over rounds; CPU = user + system time "
         f"of the 3 node processes per operation."
         + (f" tessera nodes started with `{extra}`." if extra else ""), "",
         "| load | system | ops/s | ops/s min–max | p50 ms | p99 ms | CPU µs/op | errors |",
         "|---|---|---|---|---|---|---|---|"]
for mode in ("write", "read"):
    for conns in ("1", "64"):
        for system in ("etcd", "tessera"):
            r = rows.get(f"{system} {mode} {conns}")
            if r:
                lines.append(f"| {mode} c={conns} | {system} | {r['rate']:,.0f} | "
                             f"{min(r['rates']):,.0f}–{max(r['rates']):,.0f} | "
                             f"{r['p50']/1000:.2f} | {r['p99']/1000:.2f} | {r['cpu']:,.0f} | "
                             f"{r['errors']} |")
lines.append(f"| raw write+fdatasync | - | - | - | {raw_p50/1000:.2f} | {raw_p99/1000:.2f} | - | - |")
# Each ratio of the medians, and the same ratio round by round (round i of one system
# against round i of the other, run within the same minute): how far the verdict moves
# with the spread between rounds.
lines += ["", "| ratio | value | per round | target |", "|---|---|---|---|"]
def ratio(label, a, b, target, per_a=None, per_b=None):
    if a is None or not b:
        return
    each = [x / y for x, y in zip(per_a or [], per_b or []) if y]
    rounds = ", ".join(f"{x:.2f}" for x in each)
    lines.append(f"| {label} | {a / b:.2f} | {rounds} | {target} |")
g = lambda k, f: rows[k][f] if k in rows else None
ratio("write c=1 p50, tessera/etcd", g("tessera write 1", "p50"), g("etcd write 1", "p50"), "≤ 0.5",
      g("tessera write 1", "p50s"), g("etcd write 1", "p50s"))
ratio("write c=1 p50, tessera/raw fsync p50", g("tessera write 1", "p50"), raw_p50, "≤ 2.5")
ratio("writes/s c=64, tessera/etcd", g("tessera write 64", "rate"), g("etcd write 64", "rate"), "≥ 3",
      g("tessera write 64", "rates"), g("etcd write 64", "rates"))
ratio("linearizable reads/s c=64, tessera/etcd", g("tessera read 64", "rate"), g("etcd read 64", "rate"), "≥ 3",
      g("tessera read 64", "rates"), g("etcd read 64", "rates"))
ratio("CPU per write c=64, tessera/etcd", g("tessera write 64", "cpu"), g("etcd write 64", "cpu"), "< 1")
# Where one tessera write's time goes: means over the c=1 write rounds.
totals = {}
try:
    for line in open(scratch + "/stages"):
        name, s, c = line.split()
        t = totals.setdefault(name, [0.0, 0])
        t[0] += float(s); t[1] += int(c)
except FileNotFoundError:
    pass
mean = lambda n: totals[n][0] / totals[n][1] * 1e6 if n in totals and totals[n][1] else None
if mean("total") is not None:
    lines += ["", "One tessera write (c=1), where its time goes: mean µs per stage over "
              f"{totals['total'][1]:,} traced writes (leader: src/groups/worker/trace.rs).", "",
              "| stage | mean µs | what |", "|---|---|---|"]
    def row(name, value, what):
        if value is not None:
            lines.append(f"| {name} | {value:,.0f} | {what} |")
    w, h, t = mean("wrk"), mean("http"), mean("total")
    row("client and TCP", w - h if w and h else None, "wrk's mean minus the PUT handler's latency")
    row("HTTP server", h - t if h else None, "PUT handler's latency minus the group's total")
    row("queue", mean("queue"), "handler's call to the worker taking it")
    row("propose", mean("propose"), "worker took it to the append handed to the links")
    row("leader sync", mean("leader_sync"), "append sent to the entry durable on the leader")
    row("follower ack", mean("follower_ack"), "append sent to the first follower's acknowledgement")
    row("  of which follower", mean("follower_append"), "follower: append received to acknowledgement sent")
    row("commit", mean("commit"), "quorum durable to the commit acted on")
    row("apply", mean("apply"), "commit to applied and answered")
    row("total in the group", t, "call to answer")
    row("wrk mean", w, "what the client saw")
if anomalies:
    lines += ["", "Warnings:"] + [f"- {a}" for a in anomalies]
text = "\n".join(lines) + "\n"
print(text)
with open(out, "w") as f:
    f.write(text)
EOF
say "table written to $OUT"
