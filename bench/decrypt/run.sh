#!/usr/bin/env bash
# Decrypt benchmark: a >= 1 GiB sealed dump through sealdump-decryptor (release), with the rate printed as ratios to
# baselines measured in the same run on the same machine:
#   - one core of `openssl speed -evp <aead>` (64 KiB blocks), i.e. the AEAD alone, no I/O;
#   - `age -d` of a same-size file (ChaCha20-Poly1305 STREAM, single-threaded, with I/O).
# Usage: bench/decrypt/run.sh [SIZE_MIB=1024] [chacha20-poly1305|aes-256-gcm] [THREADS=all]
# Needs: openssl, age (apt-get install age). Writes ~3x SIZE in a temporary directory (removed at the end).
set -euo pipefail

size_mib=${1:-1024}
aead=${2:-chacha20-poly1305}
threads=${3:-$(nproc)}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/sealdump-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

for tool in openssl age age-keygen; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install openssl age)" >&2; exit 2; }
done

echo "building (release)..." >&2
(cd "$repo" && cargo build -q --release -p sealdump-decryptor --bin sealdump-decryptor --example make_sealed_dump)
decryptor=$target/release/sealdump-decryptor
maker=$target/release/examples/make_sealed_dump

echo "sealing ${size_mib} MiB ($aead, 64 KiB chunks)..." >&2
"$maker" "$work" "$size_mib" "$aead" 16
bytes=$((size_mib * 1024 * 1024))

rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }   # MB/s

# Warm the page cache so every run reads from memory, as the baselines do.
cat "$work/vmcore_encrypted.bench.0" "$work/plain.bench.0" >/dev/null

# Prints "wall_seconds cpu_seconds" (user + sys, all threads) of a command. openssl speed divides by CPU user time,
# so on a busy machine compare the CPU figures; on an idle one the wall figures are the real throughput.
run_timed() {
  local f; f=$(mktemp)
  /usr/bin/time -f "%e %U %S" -o "$f" "$@" >/dev/null 2>&1 || { cat "$f" >&2; exit 1; }
  awk '{ printf "%s %.3f", $1, $2 + $3 }' "$f"; rm -f "$f"
}
wall() { echo "${1% *}"; }
cpu() { echo "${1#* }"; }

t_verify=$(run_timed "$decryptor" --key "$work/analyst.key" --threads "$threads" --verify "$work/vmcore_encrypted.bench.0")
t_file=$(run_timed "$decryptor" --key "$work/analyst.key" --threads "$threads" -o "$work/out" "$work/vmcore_encrypted.bench.0")
cmp -s "$work/out" "$work/plain.bench.0" || { echo "decrypted output differs from the plaintext!" >&2; exit 1; }
rm -f "$work/out"
t_stdout=$(run_timed "$decryptor" --key "$work/analyst.key" --threads "$threads" -o - "$work/vmcore_encrypted.bench.0")

# Baseline 1: one core of the AEAD alone.
evp=$aead
ossl_line=$(openssl speed -decrypt -evp "$evp" -bytes 65536 -seconds 3 2>/dev/null | grep -i -E "^$evp|^ChaCha20-Poly1305|^AES-256-GCM" | tail -1)
# The figure is in thousands of bytes per second ("...k").
ossl_kbs=$(echo "$ossl_line" | awk '{ v = $NF; sub(/k$/, "", v); print v }')
ossl_mbs=$(awk -v k="$ossl_kbs" 'BEGIN { printf "%.0f", k * 1000 / 1e6 }')

# Baseline 2: age -d of a same-size file.
age-keygen -o "$work/age.key" 2>/dev/null
age -r "$(age-keygen -y "$work/age.key")" -o "$work/plain.age" "$work/plain.bench.0"
cat "$work/plain.age" >/dev/null
t_age=$(run_timed age -d -i "$work/age.key" -o /dev/null "$work/plain.age")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
line() { # name, timing
  local w c; w=$(rate "$bytes" "$(wall "$2")"); c=$(rate "$bytes" "$(cpu "$2")")
  printf "%-36s %6s MB/s wall (x%s openssl-1-core, x%s age)   %6s MB/s per CPU-second\n" \
    "$1" "$w" "$(ratio "$w" "$ossl_mbs")" "$(ratio "$w" "$(rate "$bytes" "$(wall "$t_age")")")" "$c"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dump: ${size_mib} MiB, $aead, 64 KiB chunks, threads=$threads"
printf "%-36s %6s MB/s (per CPU-second of user time, as openssl speed reports)\n" "openssl speed -evp $evp -decrypt" "$ossl_mbs"
printf "%-36s %6s MB/s wall   %6s MB/s per CPU-second\n" "age -d (same size, to /dev/null)" "$(rate "$bytes" "$(wall "$t_age")")" "$(rate "$bytes" "$(cpu "$t_age")")"
line "sealdump-decryptor --verify" "$t_verify"
line "sealdump-decryptor -o FILE" "$t_file"
line "sealdump-decryptor -o - >/dev/null" "$t_stdout"
