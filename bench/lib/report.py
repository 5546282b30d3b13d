"""Writes docs/performance.md from one bench/run results file.

usage: report.py RESULTS OUT.md
The hand-written analysis (what limits each missed target and the fix) is bench/lib/analysis.md, appended as is."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import Results  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        s = f"{v:,.0f}".replace(",", " ")
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return f"{s}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Report:
    def __init__(self, r):
        self.r = r
        self.lines = []
        self.targets = []

    def w(self, s=""):
        self.lines.append(s)

    def target(self, name, ours, base, base_name, want, higher_is_better=True, unit="MB/s"):
        """A ratio row; `want=None` makes it information (no threshold, no verdict)."""
        q = ratio(ours, base)
        if want is None:
            self.targets.append((name, f"{fmt(ours)} {unit}", f"{base_name}: {fmt(base)} {unit}",
                                 "n/a" if q is None else f"{q:.2f}×", "—", "(information)"))
            return
        if q is None:
            verdict = "NOT MEASURED"
        elif higher_is_better:
            verdict = "PASS" if q >= want else "MISS"
        else:
            verdict = "PASS" if q <= want else "MISS"
        op = "≥" if higher_is_better else "≤"
        self.targets.append((name, f"{fmt(ours)} {unit}", f"{base_name}: {fmt(base)} {unit}",
                             "n/a" if q is None else f"{q:.2f}×", f"{op} {want}×", verdict))


def main():
    r = Results(sys.argv[1])
    rep = Report(r)
    w = rep.w

    sealed = {p: r.num(f"sealed_{p}_MBps") for p in (1448, 8192)}
    iperf = {p: r.num(f"iperf3_{p}") for p in (1448, 8192)}
    fbsd, ssh = r.num("fbsd_MBps"), r.num("ssh_MBps")
    rep.target("sealed e2e vs iperf3 -u, 1472-byte datagrams", sealed[1448], iperf[1448], "iperf3 -u -l 1472", 0.5)
    rep.target("sealed e2e vs iperf3 -u, 8216-byte datagrams", sealed[8192], iperf[8192], "iperf3 -u -l 8216", 0.5)
    rep.target("sealed e2e (1448) vs FreeBSD burst-then-wait", sealed[1448], fbsd, "burst-then-wait", 10)
    for delay in (1.0, 10.0):
        rep.target(f"sealed vs burst-then-wait, +{delay:g} ms each way, 0 % loss (proxy)",
                   r.lossy.get(("sealdump", delay, 0.0), (None,))[0], r.lossy.get(("fbsd", delay, 0.0), (None,))[0],
                   "burst-then-wait", 10)
    rep.target("sealed e2e (1448) vs ssh pipe", sealed[1448], ssh, "ssh 'cat > f'", 1)
    rep.target("sealed e2e (8192) vs ssh pipe", sealed[8192], ssh, "ssh 'cat > f'", 1)
    l1 = r.lossy.get(("sealdump", 1.0, 1.0), (None,))[0]
    l0 = r.lossy.get(("sealdump", 1.0, 0.0), (None,))[0]
    rep.target("1 % loss at +1 ms vs own lossless rate at +1 ms", l1, l0, "sealdump 0 % at +1 ms", 0.5)
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        c, a = r.num(f"cost_client_{aead}"), r.num(f"cost_aead_{aead}")
        rep.target(f"client-core instructions/byte vs raw AEAD ({aead})", c, a, f"raw {aead}", 1.3,
                   higher_is_better=False, unit="instr/B")
        cc, ca = r.num(f"cost_client_{aead}", 1), r.num(f"cost_aead_{aead}", 1)
        if None not in (c, a, cc, ca):
            rep.target(f"(memcpy as 1 instr/32 B) client-core vs raw AEAD ({aead})", c - cc + cc / 32,
                       a - ca + ca / 32, f"raw {aead}", 1.3, higher_is_better=False, unit="instr/B")
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        rep.target(f"decrypt 2 threads vs 1 core openssl ({aead})", r.num(f"decrypt_{aead}_2"),
                   r.num(f"openssl_{aead}_MBps"), f"openssl speed {aead}", 1.6)
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        rep.target(f"(the limit) file-write ceiling vs 1 core openssl ({aead})", r.num("write_ceiling"),
                   r.num(f"openssl_{aead}_MBps"), f"openssl speed {aead}", 1.6)
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        rep.target(f"(the limit) decrypt 2 threads vs the file-write ceiling ({aead})", r.num(f"decrypt_{aead}_2"),
                   r.num("write_ceiling"), "dd zeros to tmpfs", None)
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        per_cpu = r.num(f"decrypt_{aead}_2", 1)
        rep.target(f"(projection) decrypt on 2 idle cores = 2 × MB per CPU-second vs openssl ({aead})",
                   None if per_cpu is None else 2 * per_cpu, r.num(f"openssl_{aead}_MBps"),
                   f"openssl speed {aead}", 1.6)
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        rep.target(f"(no output file) decrypt --verify 2 threads vs openssl ({aead})", r.num(f"verify_{aead}_2"),
                   r.num(f"openssl_{aead}_MBps"), f"openssl speed {aead}", 1.6)
    rep.target("decrypt 2 threads vs age -d (chacha20-poly1305, wall)", r.num("decrypt_chacha20-poly1305_2"),
               r.num("age"), "age -d", 1.6)
    rep.target("(per CPU-second) decrypt vs age -d, chacha20-poly1305", r.num("decrypt_chacha20-poly1305_2", 1),
               r.num("age", 1), "age -d", 1.0)
    rep.target("receiver: 64 clients vs 1 client aggregate", r.num("mem_64"), r.num("mem_1"), "1 client", 0.8)
    ram = r.num("client_ram")
    rep.target("client-core RAM at its default window (256)", None if ram is None else ram / 1024, 512.0, "limit",
               1.0, higher_is_better=False, unit="KiB")
    ram4096 = r.num("client_ram_w4096")
    rep.target("client-core RAM at window 4096 (sealdump-send's default at 1448 B)",
               None if ram4096 is None else ram4096 / 1024, 512.0, "limit", 1.0, higher_is_better=False, unit="KiB")

    w("# Performance")
    w()
    w("<!-- Generated by bench/run (bench/lib/report.py); the analysis section is bench/lib/analysis.md. "
      "Do not edit by hand: re-run bench/run. -->")
    w()
    w("Every figure below comes from **one run** of `bench/run` on one machine: sealdump and every baseline were "
      "measured in the same run, so the ratios compare like with like. Re-run it with `sudo bench/run` (it "
      "installs iperf3, openssh-server, age, valgrind and python3-matplotlib if they are missing, builds the "
      "release binaries and rewrites this file and `docs/perf/*.png`; about 10–15 minutes). Raw figures of the "
      "last run: `bench/lib/results.last.txt`.")
    w()
    w(f"Run: {r.get('started_utc', '?')} – {r.get('finished_utc', '?')} UTC. "
      f"Load average at start {r.get('load_start', '?')}, at end {r.get('load_end', '?')} "
      f"(on {r.get('nproc', '?')} CPUs).")
    w()
    load = r.num("load_start")
    nproc = r.num("nproc") or 1
    if load is not None and load > nproc:
        w(f"> **Noise warning.** The machine was shared with other builds and tests during this run (load average "
          f"≈ {load:g} on {nproc:g} CPUs), so each program got only a share of the CPUs and wall-clock rates are "
          "lower and noisier than on an idle machine. Every rate is the best of two runs, and sealdump and its "
          "baselines ran interleaved under the same load, so the ratios are more trustworthy than the absolute "
          "figures. The instruction counts (callgrind) and memory figures do not depend on the load.")
        w()
    w("## Targets")
    w()
    w("| target | sealdump | baseline | ratio | required | result |")
    w("|---|---|---|---|---|---|")
    for t in rep.targets:
        w("| " + " | ".join(t) + " |")
    w()

    w("## Machine")
    w()
    w(f"- CPU: {r.get('cpu', '?')} — {r.get('nproc', '?')} CPUs (`nproc`); {r.get('mem_total_mib', '?')} MiB RAM")
    w(f"- Kernel: {r.get('kernel', '?')}; {r.get('rustc', '?')}")
    w(f"- Peers: {r.get('iperf3_version', '?')}; {r.get('openssl_version', '?')}; {r.get('ssh_version', '?')}; "
      f"age {r.get('age_version', '?')}")
    w()
    if "machine" in r.blocks:
        w("```text")
        w("$ lscpu (excerpt); free -m")
        for line in r.blocks["machine"]:
            w(line)
        w("```")
        w()

    w("## Network: sealed end to end on loopback")
    w()
    nb = r.num("net_bytes")
    w(f"`sealdump-send` (sealed for one X25519 recipient; its defaults: AES-256-GCM on this CPU, 64 KiB chunks, window "
      "4096 at 1448-byte and 768 at 8192-byte payloads, UDP GSO sends) → "
      f"`sealdump-receiver`, dump of {fmt(nb / 2**20 if nb else None)} MiB on tmpfs; rate = dump bytes / wall "
      "time from process start to FINISHED acked. iperf3 is the best delivered rate over `-b 0, 8G, 4G, 2G, 1G` "
      "(`-b 0` alone overruns the loopback receiver), counted as payload bytes "
      "(datagrams × payload size) so it is comparable with dump bytes.")
    w()
    w("| measurement | MB/s | notes |")
    w("|---|---|---|")
    for p in (1448, 8192):
        w(f"| sealdump sealed, {p}-byte payloads | {fmt(sealed[p])} | |")
        v = r.get(f"iperf3_{p}", "")
        parts = v.split()
        note = (f"{int(float(parts[1])):,} datagrams/s at `-b {parts[2]}`, {parts[3]} % lost".replace(",", " ")
                if len(parts) >= 4 else "")
        w(f"| iperf3 -u -l {p + 24} (payload-equivalent) | {fmt(iperf[p])} | {note} |")
    w(f"| FreeBSD burst-then-wait (sealdump-fbsd-client), 1448 | {fmt(fbsd)} | 64 KiB bursts, wait for all acks "
      "as the kernel does (poll the NIC, `DELAY(500)`, check), 1 s retransmit, plain |")
    fbsd_wake = r.num("fbsd_wake_MBps")
    if fbsd_wake is not None:
        w(f"| burst-then-wait waking on each ack (`--poll-us 0`), 1448 | {fmt(fbsd_wake)} | faster than a kernel can "
          f"wait; sealed 1448 is {fmt(ratio(sealed[1448], fbsd_wake))}× of it |")
    w(f"| ssh pipe `ssh 127.0.0.1 'cat > f'` | {fmt(ssh)} | |")
    w()

    w("## Lossy links")
    w()
    w("Through `impair-proxy` (bench/lib/tools, seeded): the given loss **in each direction** (data and acks) and "
      "the given delay **added in each direction** (the RTT grows by twice the delay), as netem on `lo` would do. "
      f"Each run sends a {r.get('cmd_lossy_sealdump', '').split('(')[-1].rstrip(')') or '?'} dump and is stopped "
      "after the time limit; goodput = bytes of distinct VMCORE messages whose ack passed the proxy / time from "
      "the herald to the last such ack. sealdump's figure is the median of three runs with different loss seeds; "
      "burst-then-wait runs once.")
    w()
    w("![throughput vs loss](perf/throughput-vs-loss.png)")
    w()
    w("| delay each way | loss each way | sealdump MB/s | burst-then-wait MB/s | ratio | sealdump vs its 0 % |")
    w("|---|---|---|---|---|---|")
    for delay in (1.0, 10.0):
        base = r.lossy.get(("sealdump", delay, 0.0), (None,))[0]
        for loss in (0.0, 0.1, 1.0, 5.0):
            s = r.lossy.get(("sealdump", delay, loss), (None,))[0]
            f = r.lossy.get(("fbsd", delay, loss), (None,))[0]
            q = ratio(s, f)
            q0 = ratio(s, base)
            w(f"| {delay:g} ms | {loss:g} % | {fmt(s)} | {fmt(f)} | {'n/a' if q is None else f'{q:.1f}×'} | "
              f"{'n/a' if q0 is None else f'{q0:.2f}'} |")
    w()

    w("## Client cost (instructions per byte, callgrind)")
    w()
    w("The panic-time path is `sealdump_client_core::Client` in sealed mode with the RustCrypto AEADs (the same "
      "software crypto the bare-metal client links), 1448-byte payloads, window 256, every message acked at once "
      "in memory: it seals each whole 64 KiB chunk from the caller's bytes into a chunk buffer (out of place, one "
      "pass), builds each packet (header and payload copy) straight into the transmit buffer, and handles acks. The raw AEAD encrypts the same bytes in place in 64 KiB chunks "
      "(same crate, same 32-byte AAD). Both are counted with `valgrind --tool=callgrind` at two sizes; the "
      "difference removes set-up (HPKE, key schedule, process start). Both sides run whichever SIMD backend the "
      "RustCrypto crates detect on valgrind's emulated CPU — the same one for both, so the ratio is fair, but the "
      "absolute instructions per byte are higher than on the bare CPU.")
    w()
    w("| path | chacha20-poly1305 instr/B | of which libc memcpy | aes-256-gcm instr/B | of which libc memcpy |")
    w("|---|---|---|---|---|")
    for what, name in (("client", "client-core, sealed"), ("aead", "raw AEAD")):
        w(f"| {name} | {fmt(r.num(f'cost_{what}_chacha20-poly1305'))} | "
          f"{fmt(r.num(f'cost_{what}_chacha20-poly1305', 1))} | {fmt(r.num(f'cost_{what}_aes-256-gcm'))} | "
          f"{fmt(r.num(f'cost_{what}_aes-256-gcm', 1))} |")
    w()
    w("Valgrind counts every iteration of `rep movsb` (glibc's memcpy for large copies on this CPU) as one "
      "instruction, i.e. one per byte, while the CPU moves about 32 bytes per cycle there; the \"memcpy as 1 "
      "instr/32 B\" rows of the target table correct for that.")
    w()
    if r.blocks.get("profile"):
        w("Where the client path's instructions go (`callgrind_annotate`, ChaCha20-Poly1305, self cost per "
          "function):")
        w()
        w("```text")
        for line in r.blocks["profile"]:
            w(re.sub(r"\S*\.(rs|S|c|h):", "", line)[:160])
        w("```")
        w()

    w("## Decrypt")
    w()
    db = r.num("decrypt_bytes")
    w(f"`sealdump-decryptor` on a {fmt(db / 2**20 if db else None)} MiB sealed dump (64 KiB chunks, made by the "
      "decryptor's `make_sealed_dump` example), output to a file on tmpfs, page cache warm, best of two runs. "
      "`openssl speed -decrypt -evp AEAD -bytes 65536` is one core of the AEAD alone (openssl divides by user "
      "CPU time). `age -d` decrypts a same-size file to tmpfs. MB per CPU-second (user + sys of all threads) is "
      "shown because the machine was shared. The file-write ceiling is `dd` writing zeros in 1 MiB blocks to a new "
      "file on the same tmpfs, in the same run: what creating the output file costs with no decryption at all.")
    w()
    w("![decrypt throughput vs threads](perf/decrypt-vs-threads.png)")
    w()
    w("| measurement | wall MB/s | MB per CPU-second |")
    w("|---|---|---|")
    w(f"| file-write ceiling: dd if=/dev/zero bs=1M to a new file on tmpfs | {fmt(r.num('write_ceiling'))} | "
      f"{fmt(r.num('write_ceiling', 1))} |")
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        w(f"| openssl speed {aead}, 1 core | {fmt(r.num(f'openssl_{aead}_MBps'))} | — |")
        for t in (1, 2):
            w(f"| sealdump-decryptor {aead}, {t} thread{'s' if t > 1 else ''} | "
              f"{fmt(r.num(f'decrypt_{aead}_{t}'))} | {fmt(r.num(f'decrypt_{aead}_{t}', 1))} |")
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        w(f"| sealdump-decryptor --verify {aead}, 2 threads (no output) | {fmt(r.num(f'verify_{aead}_2'))} | "
          f"{fmt(r.num(f'verify_{aead}_2', 1))} |")
    w(f"| age -d (ChaCha20-Poly1305, 1 thread) | {fmt(r.num('age'))} | {fmt(r.num('age', 1))} |")
    w()

    w("## Memory")
    w()
    ram = r.num("client_ram")
    ram1024 = r.num("client_ram_w1024")
    ram4096 = r.num("client_ram_w4096")
    w(f"- client-core static RAM (`ram_required(256, 1448, 65536)`: per-packet state, two chunk buffers, seal "
      f"header buffer, tags of the chunks in flight, the `Client` itself): **{fmt(ram)} bytes = "
      f"{fmt(ram / 1024 if ram else None)} KiB**; window 4096 (sealdump-send's default at 1448-byte payloads): "
      f"**{fmt(ram4096)} bytes = {fmt(ram4096 / 1024 if ram4096 else None)} KiB**; window 1024: {fmt(ram1024)} "
      f"bytes; window 64: {fmt(r.num('client_ram_w64'))} bytes; window "
      f"256 with 8 KiB payloads: {fmt(r.num('client_ram_8k'))} bytes. No packet is kept: a retransmission re-reads "
      f"and re-seals its chunk.")
    w("- receiver, `sealdump-fbsd-client --window 1024` clients (windowed bench mode; each bound to its own "
      "127.0.0.N address), the same total bytes split over the clients, dumps on tmpfs:")
    w()
    w("| clients | aggregate MB/s | receiver peak RSS (VmHWM) | failed clients |")
    w("|---|---|---|---|")
    for n in (1, 64):
        v = (r.get(f"mem_{n}") or "").split()
        if len(v) >= 3:
            w(f"| {n} | {fmt(float(v[0]))} | {fmt(float(v[1]) / 1024)} MiB | {v[2]} |")
    w()

    w("## Command lines")
    w()
    w("Binaries are `target/release/*` (`cargo build --release`); `client-cost` and `impair-proxy` are the "
      "bench-only programs in `bench/lib/tools` (not a workspace member). PORT/RECEIVER/PROXY are ephemeral "
      "loopback addresses chosen by the run.")
    w()
    w("```text")
    for k, v in sorted(r.kv.items()):
        if k.startswith("cmd_"):
            w(f"{k[4:]:<28} {v}")
    w("```")
    w()
    analysis = os.path.join(HERE, "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            w(f.read().rstrip())
        w()
    component_benchmarks(w)
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(rep.lines))


# Each component's own benchmark page (criterion chunk seal/open beside `openssl speed`, the receiver blast vs
# iperf3, decrypt vs openssl/age), each measured in one sitting of its own; included
# here so that the performance report holds every figure, with headings moved below this report's.
COMPONENT_PAGES = ["crypto.md", "receiver.md", "decrypt.md"]


def component_benchmarks(w):
    perf_dir = os.path.join(HERE, "..", "..", "docs", "perf")
    pages = [p for p in COMPONENT_PAGES if os.path.exists(os.path.join(perf_dir, p))]
    if not pages:
        return
    w("## Component benchmarks")
    w()
    w("Each crate's own benchmark, run on its own (not by `bench/run`), with its baseline measured in the same "
      "sitting; the source pages are `docs/perf/*.md`. They are records of their sittings: the receiver page "
      "predates the GRO/GSO session sockets; the figures above are current.")
    w()
    for page in pages:
        with open(os.path.join(perf_dir, page)) as f:
            for line in f.read().rstrip().split("\n"):
                w("##" + line if line.startswith("#") else line)
        w()


if __name__ == "__main__":
    main()
