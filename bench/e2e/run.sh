#!/usr/bin/env bash
# Sealed end-to-end rate of sealdump-send -> sealdump-receiver on loopback, as ratios to baselines measured in
# the same run on the same machine:
#   * iperf3 -u with the same datagram size (24-byte netdump header + payload)      target >= 0.5x
#   * FreeBSD's netdump client behaviour (64 KiB burst, then wait for all acks),
#     emulated by sealdump-fbsd-client against the same receiver                     target >= 10x
#   * an ssh pipe `ssh 127.0.0.1 'cat > f'`, as kdump's ssh target does                target >= 1x
#
# Then the same sealed-vs-FreeBSD comparison through a user-space delay line (bench/e2e/delay-proxy, RTT
# 2 x --delay-ms), because on bare loopback the FreeBSD client's round trips cost nothing.
#
# Usage: bench/e2e/run.sh [--size MIB] [--payloads "1448 8192"] [--delay-ms "1 5"] [--no-build]
# Needs: iperf3, openssh-server (sshd), ssh, ssh-keygen. Run from the repository root, as root for sshd.
# Traffic goes to 127.0.0.1 only.
set -euo pipefail

size_mib=512
payloads="1448 8192"
build=1
delays="1 5"
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size_mib=$2; shift 2 ;;
        --payloads) payloads=$2; shift 2 ;;
        --delay-ms) delays=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/release"
if [ "$build" = 1 ]; then
    cargo build --release --bins -p sealdump-drivers -p sealdump-receiver -p sealdump-keytool
fi
# The delay line is a separate, dependency-free cargo project (its own workspace).
here=$(cd "$(dirname "$0")" && pwd)
CARGO_TARGET_DIR="$target_dir/delay-proxy" cargo build -q --release --manifest-path "$here/delay-proxy/Cargo.toml"
delay_proxy="$target_dir/delay-proxy/release/sealdump-bench-delay-proxy"

work=$(mktemp -d "${TMPDIR:-/tmp}/sealdump-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    # A random high port nobody listens on right now (good enough on a bench machine).
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        if ! command -v ss >/dev/null || ! ss -Hln "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return
        fi
    done
}

now_ns() { date +%s%N; }
mbps() { awk -v n="$1" -v ns="$2" 'BEGIN { printf "%.1f", n / (ns / 1e9) / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== set-up: ${size_mib} MiB synthetic dump, key, receiver (work dir $work)"
dump="$work/vmcore"
"$bin/sealdump-send" --synthetic "$dump" --synthetic-size "$size_mib"
bytes=$(stat -c %s "$dump")
"$bin/sealdump-keytool" gen "$work/analyst" >/dev/null
mkdir -p "$work/dumps"
"$bin/sealdump-receiver" -D -d "$work/dumps" -a 127.0.0.1 --port 0 >"$work/receiver.out" 2>"$work/receiver.log" &
pids+=($!)
receiver=""
for _ in $(seq 1 100); do
    receiver=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/receiver.out" 2>/dev/null | head -n1 || true)
    [ -n "$receiver" ] && break
    sleep 0.1
done
[ -n "$receiver" ] || { cat "$work/receiver.log" >&2; echo "receiver did not start" >&2; exit 1; }

declare -A sealed iperf
for payload in $payloads; do
    echo "== sealdump-send, sealed (X25519, ChaCha20-Poly1305), payload $payload"
    t0=$(now_ns)
    "$bin/sealdump-send" --to "$receiver" --recipient "$work/analyst.pub" --client-port 0 \
        --payload-size "$payload" "$dump"
    t1=$(now_ns)
    sealed[$payload]=$(mbps "$bytes" $((t1 - t0)))
    echo "   ${sealed[$payload]} MB/s (wall clock, process start to FINISHED acked)"
    rm -f "$work"/dumps/vmcore_encrypted.* "$work"/dumps/key.* 2>/dev/null || true

    echo "== iperf3 -u, datagram $((payload + 24)) bytes, unlimited rate, 5 s"
    port=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$work/iperf-server.log" 2>&1 &
    pids+=($!)
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$port" -u -b 0 -l $((payload + 24)) -t 5 >"$work/iperf.log" 2>&1 || true
    # Receiver-side goodput: the "receiver" summary line, in bits/s, converted to MB/s of datagram payload.
    iperf[$payload]=$(awk '/receiver/ {
            for (i = 1; i <= NF; i++) if ($i ~ /bits\/sec$/) { v = $(i-1); u = $i }
        } END {
            m = (u ~ /^G/) ? 1e9 : (u ~ /^M/) ? 1e6 : (u ~ /^K/) ? 1e3 : 1;
            printf "%.1f", v * m / 8 / 1e6
        }' "$work/iperf.log")
    echo "   ${iperf[$payload]} MB/s received"
done

echo "== FreeBSD netdump behaviour (sealdump-fbsd-client: 64 KiB burst, wait for all acks), payload 1448, plain"
fbsd_line=$("$bin/sealdump-fbsd-client" --to "$receiver" --bind 127.0.0.1:0 --payload 1448 "$dump" 2>&1 | tail -n1)
echo "   $fbsd_line"
# "bytes=… seconds=… MBps=… pps=… retransmits=…"
fbsd=$(printf '%s\n' "$fbsd_line" | sed -n 's/.*MBps=\([0-9.]*\).*/\1/p')
rm -f "$work"/dumps/vmcore.* 2>/dev/null || true

echo "== ssh 127.0.0.1 'cat > f' (openssh-server on a loopback port, throw-away keys)"
ssh_rate=""
if command -v sshd >/dev/null && command -v ssh >/dev/null; then
    ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
    ssh-keygen -q -t ed25519 -N '' -f "$work/userkey"
    cp "$work/userkey.pub" "$work/authorized_keys"
    mkdir -p /run/sshd 2>/dev/null || true
    sport=$(free_port)
    cat >"$work/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $sport
HostKey $work/hostkey
AuthorizedKeysFile $work/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PidFile $work/sshd.pid
CONF
    "$(command -v sshd)" -f "$work/sshd_config" -D -e 2>"$work/sshd.log" &
    pids+=($!)
    sleep 0.5
    t0=$(now_ns)
    if ssh -p "$sport" -i "$work/userkey" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o LogLevel=ERROR 127.0.0.1 "cat > '$work/ssh-copy'" <"$dump"; then
        t1=$(now_ns)
        ssh_rate=$(mbps "$bytes" $((t1 - t0)))
        echo "   $ssh_rate MB/s ($(ssh -V 2>&1 | cut -d, -f1))"
    else
        echo "   ssh failed; see $work/sshd.log" >&2
    fi
    rm -f "$work/ssh-copy"
else
    echo "   skipped: sshd/ssh not installed (apt-get install openssh-server)"
fi

declare -A d_sealed d_fbsd
for d in $delays; do
    echo "== through the delay line, ${d} ms each way (RTT $((2 * d)) ms), payload 1448"
    "$delay_proxy" 127.0.0.1:0 "$receiver" "$d" >"$work/proxy.out" 2>&1 &
    proxy_pid=$!
    pids+=("$proxy_pid")
    proxy=""
    for _ in $(seq 1 50); do
        proxy=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/proxy.out" 2>/dev/null | head -n1 || true)
        [ -n "$proxy" ] && break
        sleep 0.1
    done
    t0=$(now_ns)
    "$bin/sealdump-send" --to "$proxy" --recipient "$work/analyst.pub" --client-port 0 "$dump"
    t1=$(now_ns)
    d_sealed[$d]=$(mbps "$bytes" $((t1 - t0)))
    rm -f "$work"/dumps/vmcore_encrypted.* "$work"/dumps/key.* 2>/dev/null || true
    # FreeBSD's client is slow here: send 1/8 of the dump (the rate is steady after the first round trips).
    head -c $((bytes / 8)) "$dump" >"$work/vmcore.part"
    line=$("$bin/sealdump-fbsd-client" --to "$proxy" --bind 127.0.0.1:0 --payload 1448 "$work/vmcore.part" 2>&1 | tail -n1)
    d_fbsd[$d]=$(printf '%s\n' "$line" | sed -n 's/.*MBps=\([0-9.]*\).*/\1/p')
    echo "   sealed ${d_sealed[$d]} MB/s, FreeBSD burst-then-wait ${d_fbsd[$d]:-n/a} MB/s"
    rm -f "$work"/dumps/vmcore.* "$work/vmcore.part" 2>/dev/null || true
    kill "$proxy_pid" 2>/dev/null || true
done

echo
echo "== results ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -sr), ${size_mib} MiB dump)"
printf '%-52s %10s %8s %8s\n' "measurement" "MB/s" "ratio" "target"
for payload in $payloads; do
    printf '%-52s %10s %8s %8s\n' "sealdump sealed, payload $payload" "${sealed[$payload]}" "" ""
    printf '%-52s %10s %8s %8s\n' "  vs iperf3 -u -l $((payload + 24))" "${iperf[$payload]}" \
        "$(ratio "${sealed[$payload]}" "${iperf[$payload]}")" ">= 0.5"
done
first=${payloads%% *}
printf '%-52s %10s %8s %8s\n' "  sealed $first vs FreeBSD burst-then-wait, 1448" "${fbsd:-n/a}" \
    "$(ratio "${sealed[$first]}" "${fbsd:-0}")" ">= 10"
printf '%-52s %10s %8s %8s\n' "  sealed $first vs ssh 127.0.0.1 'cat > f'" "${ssh_rate:-n/a}" \
    "$(ratio "${sealed[$first]}" "${ssh_rate:-0}")" ">= 1"
for d in $delays; do
    printf '%-52s %10s %8s %8s\n' "sealed 1448, RTT $((2 * d)) ms (delay line)" "${d_sealed[$d]}" "" ""
    printf '%-52s %10s %8s %8s\n' "  vs FreeBSD burst-then-wait, same path" "${d_fbsd[$d]:-n/a}" \
        "$(ratio "${d_sealed[$d]}" "${d_fbsd[$d]:-0}")" ">= 10"
done
