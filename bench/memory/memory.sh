# Memory section (sourced by bench/run): client-core's static RAM (ram_required at the default window) and the
# receiver's peak RSS (VmHWM) and aggregate rate with 1 and with 64 concurrent clients. The clients are the
# receiver crate's windowed bench client (sealdump-fbsd-client --window), each bound to its own 127.0.0.N
# address, because sealdump-send has no source-address option; the receiver's work per packet is the same for
# sealed and plain dumps (it stores bytes at offsets and acks).

MEM_WINDOW=${MEM_WINDOW:-1024}

section_memory() {
    "$TOOLS/client-cost" ram >"$work/ram.txt"
    put client_ram "$(sed -n 's/^window=256 payload=1448 chunk=65536 ram_bytes=//p' "$work/ram.txt")"
    put client_ram_w64 "$(sed -n 's/^window=64 payload=1448 chunk=65536 ram_bytes=//p' "$work/ram.txt")"
    put client_ram_8k "$(sed -n 's/^window=256 payload=8192 chunk=65536 ram_bytes=//p' "$work/ram.txt")"
    put client_ram_w1024 "$(sed -n 's/^window=1024 payload=1448 chunk=65536 ram_bytes=//p' "$work/ram.txt")"
    put client_ram_w4096 "$(sed -n 's/^window=4096 payload=1448 chunk=65536 ram_bytes=//p' "$work/ram.txt")"
    cmdline ram client-cost ram "(sealdump_client_core::ram_required(window, payload, chunk))"

    local total=$((MEM_MIB << 20)) n t0 s
    for n in 1 64; do
        start_receiver "dumps-mem$n" --keep 1 --max-sessions 128
        local recv_pid=$RECV_PID per=$((total / n)) cpids=()
        cmdline "mem_$n" "$n x sealdump-fbsd-client --to RECEIVER --bind 127.0.0.N:0 --window $MEM_WINDOW" \
            "--rto-ms 200 --payload 1448 --synthetic $per (sum ${MEM_MIB} MiB)"
        t0=$(now_ns)
        for i in $(seq 1 "$n"); do
            timeout "${MEM_CLIENT_TIMEOUT:-60}" "$BIN/sealdump-fbsd-client" --to "$RECV_ADDR" --bind "127.0.0.$((i + 1)):0" --window "$MEM_WINDOW" \
                --rto-ms 200 --payload 1448 --synthetic "$per" >"$work/mem-client.$i" 2>&1 &
            cpids+=($!)
        done
        local failed=0
        for p in "${cpids[@]}"; do wait "$p" || failed=$((failed + 1)); done
        s=$(secs_since "$t0")
        # Aggregate = bytes of the clients that finished / the longest of their own run times (they start
        # together); a client that did not finish in time counts as failed and is reported.
        local agg
        agg=$(cat "$work"/mem-client.* | awk -F'[ =]' '/^bytes=/ { b += $2; if ($4 > t) t = $4 } END { if (t > 0) printf "%.1f", b / t / 1e6; else print 0 }')
        put "mem_${n}" "$agg $(vm_hwm_kib "$recv_pid") $failed"
        rm -f "$work"/mem-client.*
        stop_pid "$recv_pid"
        rm -rf "$work/dumps-mem$n"
    done
}
