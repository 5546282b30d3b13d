"""PNG plots for docs/performance.md: throughput vs loss rate, decrypt throughput vs threads.

usage: plot.py RESULTS OUTDIR"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from results import Results  # noqa: E402

LOSSES = [0.0, 0.1, 1.0, 5.0]


def lossy_plot(r, out):
    if not r.lossy:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    xs = list(range(len(LOSSES)))
    styles = {("sealdump", 1.0): ("tab:blue", "-"), ("sealdump", 10.0): ("tab:blue", "--"),
              ("fbsd", 1.0): ("tab:red", "-"), ("fbsd", 10.0): ("tab:red", "--")}
    names = {"sealdump": "sealdump-send (sealed)", "fbsd": "FreeBSD burst-then-wait"}
    for (client, delay), (color, ls) in styles.items():
        ys = [r.lossy.get((client, delay, loss), (None,))[0] for loss in LOSSES]
        if all(y is None for y in ys):
            continue
        ys = [max(y, 0.01) if y is not None else float("nan") for y in ys]
        ax.plot(xs, ys, color=color, linestyle=ls, marker="o", label=f"{names[client]}, +{delay:g} ms each way")
    ax.set_xticks(xs, [f"{loss:g} %" for loss in LOSSES])
    ax.set_yscale("log")
    ax.set_xlabel("loss rate (each direction)")
    ax.set_ylabel("goodput, MB/s (log)")
    ax.set_title("Dump goodput through the impairment proxy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput-vs-loss.png"))
    plt.close(fig)


def decrypt_plot(r, out):
    fig, ax = plt.subplots(figsize=(10, 4.4), dpi=110)
    any_line = False
    for aead, color in (("chacha20-poly1305", "tab:blue"), ("aes-256-gcm", "tab:green")):
        pts = [(t, r.num(f"decrypt_{aead}_{t}")) for t in (1, 2)]
        pts = [(t, y) for t, y in pts if y is not None]
        if pts:
            any_line = True
            ax.plot([t for t, _ in pts], [y for _, y in pts], marker="o", color=color,
                    label=f"sealdump-decryptor, {aead} (wall)")
            proj = [(t, r.num(f"decrypt_{aead}_{t}", 1)) for t, _ in pts]
            proj = [(t, y * t) for t, y in proj if y is not None]
            if proj:
                ax.plot([t for t, _ in proj], [y for _, y in proj], marker="s", color=color, linestyle="--",
                        fillstyle="none", label=f"  idle-core projection: MB per CPU-second × threads")
        ossl = r.num(f"openssl_{aead}_MBps")
        if ossl:
            ax.axhline(ossl, color=color, linestyle=":", label=f"openssl speed {aead}, 1 core")
    age = r.num("age")
    if age:
        ax.axhline(age, color="tab:red", linestyle="--", label="age -d (1 thread, wall)")
    if not any_line:
        plt.close(fig)
        return
    ax.set_xticks([1, 2])
    ax.set_xlim(0.7, 2.3)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("decryptor threads")
    ax.set_ylabel("MB/s")
    ax.set_title("Decrypt throughput vs threads")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "decrypt-vs-threads.png"))
    plt.close(fig)


def main():
    r = Results(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    lossy_plot(r, out)
    decrypt_plot(r, out)


if __name__ == "__main__":
    main()
