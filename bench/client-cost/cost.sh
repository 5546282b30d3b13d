# Client-cost section (sourced by bench/run): instructions per byte of the panic-time path — a sealed
# sealdump_client_core::Client (software crypto, every message acked at once in memory, no sockets) — against the
# raw AEAD encrypting the same bytes in place in 64 KiB chunks, both counted by valgrind --tool=callgrind.
# Each is run at two sizes; (instructions(big) - instructions(small)) / (bytes(big) - bytes(small)) removes the
# fixed set-up (HPKE wrap, key schedules, process start).

COST_SMALL_MIB=${COST_SMALL_MIB:-4}
COST_BIG_MIB=${COST_BIG_MIB:-20}

# callgrind_total CMD...: prints "total memcpy" instruction counts of a callgrind run. memcpy = self cost of libc's
# memcpy/memmove, which valgrind counts per byte for `rep movsb` (the CPU moves ~32 bytes per cycle there).
callgrind_total() {
    local out="$work/callgrind.$RANDOM"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>"$work/valgrind.log" ||
        { cat "$work/valgrind.log" >&2; return 1; }
    local total copy
    total=$(sed -n -E 's/^(summary|totals): *([0-9]+).*/\2/p' "$out" | head -n1)
    copy=$(callgrind_annotate "$out" 2>/dev/null | grep -E '^ *[0-9,]+ \(.*(memcpy|memmove)' |
        awk '{ gsub(",", "", $1); s += $1 } END { print s + 0 }')
    echo "$total $copy"
    rm -f "$out"
}

section_cost() {
    local aead what small big
    cmdline cost valgrind --tool=callgrind client-cost "{client,aead}" "{$COST_SMALL_MIB,$COST_BIG_MIB}" AEAD \
        "(bench/lib/tools/src/bin/client-cost.rs; per byte = difference of totals / difference of bytes)"
    for aead in chacha20-poly1305 aes-256-gcm; do
        for what in client aead; do
            small=$(callgrind_total "$TOOLS/client-cost" "$what" "$COST_SMALL_MIB" "$aead")
            big=$(callgrind_total "$TOOLS/client-cost" "$what" "$COST_BIG_MIB" "$aead")
            put "cost_${what}_${aead}" "$(awk -v s="${small% *}" -v b="${big% *}" -v cs="${small#* }" -v cb="${big#* }" \
                -v n=$(((COST_BIG_MIB - COST_SMALL_MIB) << 20)) \
                'BEGIN { printf "%.3f %.3f", (b - s) / n, (cb - cs) / n }') ${small% *} ${big% *}"
        done
    done
    # Where the client path's instructions go (self cost of the top functions), for the report's profile; source
    # paths are cut so no path of the build machine ends up in the report.
    local out="$work/callgrind.profile"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$TOOLS/client-cost" client "$COST_BIG_MIB" chacha20-poly1305 \
        >/dev/null 2>&1
    {
        echo "profile_block_begin"
        callgrind_annotate "$out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -n 14 |
            sed -E 's/ +/ /g; s/\[[^]]*\]//g; s#[^ ]*\.(rs|S|c|h):##' | cut -c1-160
        echo "profile_block_end"
    } >>"$RES"
}
