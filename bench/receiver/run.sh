#!/usr/bin/env bash
# Receiver throughput vs. `iperf3 -u` on loopback, same datagram size, measured in the same run.
#
#   bench/receiver/run.sh                 # 1 GiB dump, 1448-byte payloads (1472-byte datagrams), window 1024
#   SIZE=256M WINDOW=512 RUNS=3 bench/receiver/run.sh
#
# The dump is written to DUMPDIR (default: a directory under /dev/shm, so the disk is not what is measured;
# set DUMPDIR to a disk path to include it). Prints one line per run and the best ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE=${SIZE:-1G}
PAYLOAD=${PAYLOAD:-1448}
WINDOW=${WINDOW:-1024}
RUNS=${RUNS:-3}
IPERF_SECONDS=${IPERF_SECONDS:-5}
DATAGRAM=$((PAYLOAD + 24))

if ! command -v iperf3 >/dev/null; then
    echo "installing iperf3" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y iperf3 >/dev/null; else sudo apt-get install -y iperf3 >/dev/null; fi
fi
command -v python3 >/dev/null || { echo "python3 is needed to read iperf3's JSON" >&2; exit 2; }

cargo build --release -q -p sealdump-receiver --bins
BIN=${CARGO_TARGET_DIR:-target}/release

WORK=$(mktemp -d "${DUMPDIR_PARENT:-/dev/shm}/sealdump-bench.XXXXXX" 2>/dev/null || mktemp -d)
DUMPDIR=${DUMPDIR:-$WORK/dumps}
mkdir -p "$DUMPDIR"
RECEIVER_PID=""
IPERF_PID=""
cleanup() {
    [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null || true
    [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/sealdump-receiver" -D -d "$DUMPDIR" -a 127.0.0.1 --port 0 --no-resolve --keep 1 \
    >"$WORK/receiver.out" 2>"$WORK/receiver.log" &
RECEIVER_PID=$!
for _ in $(seq 50); do grep -q '^listening on ' "$WORK/receiver.out" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/receiver.out")
[ -n "$ADDR" ] || { echo "receiver did not start" >&2; cat "$WORK/receiver.log" >&2; exit 1; }

IPERF_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5

echo "datagram ${DATAGRAM} B (payload ${PAYLOAD} + 24), dump ${SIZE}, window ${WINDOW}, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
best=0
for run in $(seq "$RUNS"); do
    ours=$("$BIN/sealdump-fbsd-client" --to "$ADDR" --bind 127.0.0.1:0 --window "$WINDOW" --rto-ms 200 \
        --payload "$PAYLOAD" --synthetic "$SIZE")
    # iperf3 -u -b 0 overruns a loopback receiver (most datagrams are dropped); take the best delivered rate over
    # a few target bitrates as the baseline.
    iperf_best=""
    for rate in 0 4G 2G 1G 500M; do
        j=$(iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -u -b "$rate" -l "$DATAGRAM" -t "$IPERF_SECONDS" -J)
        iperf_best=$(python3 - "$j" "$iperf_best" "$rate" <<'PY'
import json, sys
s = json.loads(sys.argv[1])["end"]["sum"]
pps = (s["packets"] - s["lost_packets"]) / s["seconds"]
prev = sys.argv[2].split()
if not prev or pps > float(prev[0]):
    print(f"{pps} {s['lost_percent']:.1f} {sys.argv[3]}")
else:
    print(sys.argv[2])
PY
)
    done
    line=$(python3 - "$ours" "$iperf_best" "$DATAGRAM" <<'PY'
import sys
ours = dict(kv.split("=") for kv in sys.argv[1].split())
iperf_pps, lost, rate = sys.argv[2].split()
iperf_pps = float(iperf_pps)
dgram = int(sys.argv[3])
our_pps = float(ours["pps"])
print(f"ours {our_pps:,.0f} pkt/s {our_pps*dgram/1e6:,.1f} MB/s (dump {float(ours['MBps']):,.1f} MB/s payload, "
      f"{ours['retransmits']} retransmits) | iperf3 -u best {iperf_pps:,.0f} pkt/s {iperf_pps*dgram/1e6:,.1f} MB/s "
      f"(-b {rate}, lost {lost}%) | ratio {our_pps/iperf_pps:.2f}")
PY
)
    echo "run $run: $line"
    r=$(echo "$line" | sed -n 's/.*ratio \([0-9.]*\)$/\1/p')
    best=$(python3 -c "print(max($best, $r))")
done
echo "best ratio (receiver / iperf3 -u): $best"
