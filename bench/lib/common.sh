# Shared helpers for bench/run (sourced). Results are "key value..." lines in $RES, read by report.py/plot.py.

work=$(mktemp -d /dev/shm/sealdump-perf.XXXXXX 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/sealdump-perf.XXXXXX")
RES=${RESULTS:-$work/results.txt}
: >>"$RES"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
# put KEY VALUE... : one result line (a later line with the same key wins).
put() { echo "$*" >>"$RES"; log "  $*"; }
now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / s / 1e6; else print 0 }'; }
# Records the exact command line of a measurement for the report.
cmdline() { local k=$1; shift; echo "cmd_$k $*" >>"$RES"; }

# The Debian python has python3-matplotlib; a pyenv/venv python on PATH may not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

install_tools() {
    local need=()
    command -v iperf3 >/dev/null || need+=(iperf3)
    command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    command -v ssh >/dev/null || need+=(openssh-client)
    command -v age >/dev/null || need+=(age)
    command -v valgrind >/dev/null || need+=(valgrind)
    command -v openssl >/dev/null || need+=(openssl)
    "$PY" -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null ||
            { $sudo apt-get update >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null; }
    fi
}

build_all() {
    log "building release binaries"
    cargo build --release -q -p sealdump-drivers -p sealdump-receiver -p sealdump-keytool -p sealdump-decryptor --bins
    cargo build --release -q -p sealdump-decryptor --example make_sealed_dump
    # The bench tools are their own workspace; start from the main lock file so they build with the same
    # dependency versions (cargo drops the entries they do not use).
    [ -f "$repo/bench/lib/tools/Cargo.lock" ] || cp "$repo/Cargo.lock" "$repo/bench/lib/tools/Cargo.lock"
    (cd "$repo/bench/lib/tools" && cargo build --release -q)
    BIN=${CARGO_TARGET_DIR:-$repo/target}/release
    TOOLS=${CARGO_TARGET_DIR:-$repo/bench/lib/tools/target}/release
    [ -x "$TOOLS/impair-proxy" ] || TOOLS=$repo/bench/lib/tools/target/release
}

describe_machine() {
    # Appending a partial re-run (--only, RESULTS=file) to an earlier run keeps that run's machine description.
    if grep -q '^started_utc ' "$RES"; then put rerun_utc "$(date -u '+%Y-%m-%d %H:%M') load $(cut -d' ' -f1-3 /proc/loadavg)"; return; fi
    put started_utc "$(date -u '+%Y-%m-%d %H:%M')"
    put nproc "$(nproc)"
    put cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
    put kernel "$(uname -sr)"
    put mem_total_mib "$(free -m | awk '/^Mem:/ { print $2 }')"
    put load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    put rustc "$(rustc --version)"
    put openssl_version "$(openssl version)"
    put iperf3_version "$(iperf3 --version | head -n1)"
    put ssh_version "$(ssh -V 2>&1 | cut -d, -f1)"
    put age_version "$(age --version)"
    lscpu >"$work/lscpu.txt"
    free -m >"$work/free.txt"
    {
        echo "machine_block_begin"
        sed -n -E '/^(Architecture|CPU\(s\)|Model name|Thread|Core|Socket|L2|L3|Flags|Hypervisor)/p' "$work/lscpu.txt" |
            sed -E 's/^(Flags: +).*/\1(avx2: '"$(grep -qw avx2 /proc/cpuinfo && echo yes || echo no)"', avx512f: '"$(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)"', aes: '"$(grep -qw aes /proc/cpuinfo && echo yes || echo no)"', vaes: '"$(grep -qw vaes /proc/cpuinfo && echo yes || echo no)"')/'
        cat "$work/free.txt"
        echo "machine_block_end"
    } >>"$RES"
}

free_udp_port() {
    "$PY" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
free_tcp_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_receiver NAME [extra args]: starts sealdump-receiver on 127.0.0.1, an ephemeral herald port, dumps in
# $work/NAME; sets RECV_ADDR and RECV_PID.
start_receiver() {
    local name=$1; shift
    mkdir -p "$work/$name"
    "$BIN/sealdump-receiver" -D -d "$work/$name" -a 127.0.0.1 --port 0 --no-resolve "$@" \
        >"$work/$name.out" 2>"$work/$name.log" &
    RECV_PID=$!
    pids+=("$RECV_PID")
    RECV_ADDR=""
    for _ in $(seq 100); do
        RECV_ADDR=$(sed -n 's/^listening on //p' "$work/$name.out" | grep -oE '127\.0\.0\.1:[0-9]+' | head -n1 || true)
        [ -n "$RECV_ADDR" ] && break
        sleep 0.1
    done
    [ -n "$RECV_ADDR" ] || { cat "$work/$name.log" >&2; log "receiver $name did not start"; exit 1; }
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Peak resident set of a process in KiB.
vm_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
