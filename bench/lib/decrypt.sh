# Decrypt section (sourced by bench/run): sealdump-decryptor at 1 and 2 threads vs one core of openssl speed and
# age -d of a same-size file. Inputs and outputs on tmpfs, page cache warm.

# timed CMD...: prints "wall_seconds cpu_seconds" (cpu = user + sys of all threads; wall from the nanosecond
# clock, as time's %e has 10 ms steps, 3 % of a 1 GiB run).
timed() {
    local f start end; f=$(mktemp)
    start=$(now_ns)
    /usr/bin/time -f "%U %S" -o "$f" "$@" >/dev/null 2>"$work/timed.err" || { cat "$work/timed.err" "$f" >&2; rm -f "$f"; return 1; }
    end=$(now_ns)
    awk -v ns=$((end - start)) '{ printf "%.4f %.3f", ns / 1e9, $1 + $2 }' "$f"; rm -f "$f"
}

# best_of_two LABEL OUTPUT CMD...: runs CMD twice (removing OUTPUT first, unless it is empty) and prints the
# better "wall_MBps cpu_MBps" of the two for $bytes bytes.
best_of_two() {
    local label=$1 output=$2 best_w=0 best_c=0 t w c
    shift 2
    for _ in 1 2; do
        [ -z "$output" ] || rm -f "$output"
        t=$(timed "$@") || return 1
        w=$(mbps "$bytes" "${t% *}"); c=$(mbps "$bytes" "${t#* }")
        log "  $label: $w MB/s wall, $c MB/cpu-s"
        best_w=$(awk -v a="$best_w" -v b="$w" 'BEGIN { print (b > a) ? b : a }')
        best_c=$(awk -v a="$best_c" -v b="$c" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$best_w $best_c"
}

section_decrypt() {
    local bytes=$((DECRYPT_MIB << 20)) aead d best
    [ -x /usr/bin/time ] || { apt-get install -y time >/dev/null; }
    put decrypt_bytes "$bytes"
    # The file-write ceiling: a 1 MiB-block dd of zeros into a new file on the same tmpfs, best of two. Every byte
    # the decryptor writes costs at least this (a new page per 4 KiB, copied in under the file's lock), so a
    # target above it cannot be met by any decryptor on this machine.
    mkdir -p "$work/ceiling"
    cmdline write_ceiling dd if=/dev/zero of=OUT bs=1M count="$DECRYPT_MIB" "(OUT on tmpfs)"
    put write_ceiling "$(best_of_two "dd zeros to tmpfs" "$work/ceiling/out" dd if=/dev/zero \
        of="$work/ceiling/out" bs=1M count="$DECRYPT_MIB")"
    rm -rf "$work/ceiling"
    for aead in chacha20-poly1305 aes-256-gcm; do
        # One core of the AEAD alone (64 KiB blocks). openssl divides by user CPU time.
        local line kbs
        line=$(openssl speed -decrypt -evp "$aead" -bytes 65536 -seconds 3 2>/dev/null |
            grep -i -E "^(chacha20-poly1305|aes-256-gcm)" | tail -n1)
        kbs=$(echo "$line" | awk '{ v = $NF; sub(/k$/, "", v); print v }')
        put "openssl_${aead}_MBps" "$(awk -v k="$kbs" 'BEGIN { printf "%.0f", k * 1000 / 1e6 }')"
        cmdline "openssl_$aead" openssl speed -decrypt -evp "$aead" -bytes 65536 -seconds 3

        d="$work/dec-$aead"
        mkdir -p "$d"
        "$BIN/examples/make_sealed_dump" "$d" "$DECRYPT_MIB" "$aead" 16 >/dev/null
        cat "$d/vmcore_encrypted.bench.0" >/dev/null
        for threads in 1 2; do
            cmdline "decrypt_${aead}_$threads" sealdump-decryptor --key analyst.key --threads "$threads" \
                -o OUT vmcore_encrypted.bench.0 "(${DECRYPT_MIB} MiB, 64 KiB chunks, OUT on tmpfs)"
            best=$(best_of_two "decrypt $aead x$threads" "$d/out" "$BIN/sealdump-decryptor" --key "$d/analyst.key" \
                --threads "$threads" -o "$d/out" "$d/vmcore_encrypted.bench.0")
            cmp -s "$d/out" "$d/plain.bench.0" || { log "decrypted output differs from the plaintext"; exit 1; }
            rm -f "$d/out"
            put "decrypt_${aead}_${threads}" "$best"
        done
        # --verify authenticates every chunk and writes nothing: the decryptor's rate without the output file
        # (tmpfs page allocation and copy under one inode lock), i.e. how close it is to the AEAD's own limit.
        cmdline "verify_${aead}_2" sealdump-decryptor --key analyst.key --threads 2 --verify \
            vmcore_encrypted.bench.0 "(${DECRYPT_MIB} MiB, no output)"
        best=$(best_of_two "verify $aead x2" "" "$BIN/sealdump-decryptor" --key "$d/analyst.key" --threads 2 \
            --verify "$d/vmcore_encrypted.bench.0")
        put "verify_${aead}_2" "$best"
        if [ "$aead" = chacha20-poly1305 ]; then
            # age: ChaCha20-Poly1305 STREAM in 64 KiB chunks, single-threaded; same plaintext, output on tmpfs too.
            age-keygen -o "$work/age.key" 2>/dev/null
            age -r "$(age-keygen -y "$work/age.key")" -o "$d/plain.age" "$d/plain.bench.0"
            cat "$d/plain.age" >/dev/null
            cmdline age age -d -i age.key -o OUT plain.age "(${DECRYPT_MIB} MiB, OUT on tmpfs)"
            put age "$(best_of_two "age -d" "$d/age.out" age -d -i "$work/age.key" -o "$d/age.out" "$d/plain.age")"
        fi
        rm -rf "$d"
    done
}
