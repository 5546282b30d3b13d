# Lossy section (sourced by bench/run): sealdump-send (sealed) and FreeBSD burst-then-wait through the seeded
# user-space impairment proxy (bench/lib/tools/src/bin/impair-proxy.rs): loss 0 / 0.1 / 1 / 5 % in each
# direction, 1 ms and 10 ms added delay in each direction (like netem on lo: the RTT grows by twice the delay).
# Both clients use 1448-byte payloads, as on an MTU 1500 link (sealdump-send would pick 8 KiB towards a loopback
# address, which is the proxy). Each run sends LOSSY_MIB MiB, stopped after LOSSY_SECONDS; the goodput is measured in the proxy (bytes of
# distinct VMCORE messages whose ack passed, first herald to last such ack). sealdump's figure is the median of
# three runs with different loss seeds.

# lossy_run CLIENT DELAY LOSS SEED: prints "MBps acked_bytes seconds".
lossy_run() {
    local client=$1 delay=$2 loss=$3 seed=$4 stats="$work/proxy.stats" ppid out
    rm -f "$stats"
    # A fresh receiver per run: every run comes from the proxy's 127.0.0.1, and a run stopped by the time limit
    # leaves its session open, which would hold the next run's herald back (a herald from a client's IP while its
    # dump is flowing is ignored for DUPLICATE_HERALD_WINDOW, 5 s).
    rm -rf "$work/dumps-lossy"
    start_receiver dumps-lossy --keep 1 --herald-rate 1000
    local recv_pid=$RECV_PID
    "$TOOLS/impair-proxy" --listen 127.0.0.1:0 --upstream "$RECV_ADDR" --delay-ms "$delay" --loss "$loss" \
        --seed "$seed" --stats "$stats" >"$work/proxy.out" 2>"$work/proxy.log" &
    ppid=$!
    pids+=("$ppid")
    local listen=""
    for _ in $(seq 50); do
        listen=$(sed -n 's/^listening on //p' "$work/proxy.out")
        [ -n "$listen" ] && break
        sleep 0.1
    done
    case "$client" in
        sealdump)
            timeout "$LOSSY_SECONDS" "$BIN/sealdump-send" --to "$listen" --recipient "$work/analyst-lossy.pub" \
                --client-port 0 --payload-size 1448 --quiet "$work/vmcore-lossy" >/dev/null 2>&1 || true ;;
        fbsd)
            timeout "$LOSSY_SECONDS" "$BIN/sealdump-fbsd-client" --to "$listen" --bind 127.0.0.1:0 --payload 1448 \
                "$work/vmcore-lossy" >/dev/null 2>&1 || true ;;
    esac
    sleep 0.3 # one more stats write
    stop_pid "$ppid"
    stop_pid "$recv_pid"
    if [ ! -s "$stats" ]; then
        log "  impair-proxy wrote no stats (listen='$listen'): $(cat "$work/proxy.log" 2>/dev/null | tail -n 2)"
    fi
    out=$(cat "$stats" 2>/dev/null || echo "acked_bytes=0 seconds=0")
    "$PY" - "$out" <<'PY'
import sys
kv = dict(x.split("=") for x in sys.argv[1].split())
b, s = int(kv["acked_bytes"]), float(kv["seconds"])
print(f"{(b / s / 1e6) if s > 0 else 0:.2f} {b} {s:.3f} fwd={kv.get('forward','?')} fwd_drop={kv.get('forward_dropped','?')} back={kv.get('back','?')} back_drop={kv.get('back_dropped','?')}")
PY
}

section_lossy() {
    [ -f "$work/analyst.pub" ] || "$BIN/sealdump-keytool" gen "$work/analyst" >/dev/null
    cp "$work/analyst.pub" "$work/analyst-lossy.pub"
    "$BIN/sealdump-send" --synthetic "$work/vmcore-lossy" --synthetic-size "$LOSSY_MIB"
    local seed=1
    cmdline lossy_proxy impair-proxy --listen 127.0.0.1:0 --upstream RECEIVER --delay-ms D --loss L --seed N \
        "(D and L in each direction)"
    cmdline lossy_sealdump timeout "$LOSSY_SECONDS" sealdump-send --to PROXY --recipient analyst.pub --client-port 0 \
        --payload-size 1448 \
        "vmcore (${LOSSY_MIB} MiB)"
    cmdline lossy_fbsd timeout "$LOSSY_SECONDS" sealdump-fbsd-client --to PROXY --bind 127.0.0.1:0 --payload 1448 \
        "vmcore (${LOSSY_MIB} MiB)"
    for delay in 1 10; do
        for loss in 0 0.1 1 5; do
            local r runs
            # sealdump: the median of three runs (other seeds): a 64 MiB run at +1 ms lasts a tenth of a second, so
            # one scheduling hiccup on the shared cores moves a single run by a tenth.
            runs=$(for k in 0 100 200; do lossy_run sealdump "$delay" "$loss" $((seed + k)); done)
            log "  sealdump +$delay ms $loss %: $(echo "$runs" | awk '{ printf "%s ", $1 }')MB/s"
            put "lossy sealdump $delay $loss" "$(echo "$runs" | sort -n -k1,1 | sed -n 2p)"
            r=$(lossy_run fbsd "$delay" "$loss" $((seed + 1)))
            seed=$((seed + 2))
            put "lossy fbsd $delay $loss" "$r"
        done
    done
    rm -rf "$work/dumps-lossy" "$work/vmcore-lossy"
}
