#!/usr/bin/env python3
"""Writes the committed seed corpus: a few valid inputs per target (big-endian, as FreeBSD sends them)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def msg(mtype, seqno, offset, payload, aux2=0):
    return struct.pack(">IIQII", mtype, seqno, offset, len(payload), aux2) + payload


def pad(s, n):
    return s + b"\0" * (n - len(s))


def kdh_v4(magic=b"FreeBSD Kernel Dump", arch=b"amd64", keysize=0, compression=0):
    length = 0x12345000
    h = (pad(magic, 20) + pad(arch, 12)
         + struct.pack(">IIQQII", 4, 2, length, 1732000000, keysize, 4096)
         + pad(b"db1.example.org", 64)
         + pad(b"FreeBSD 14.1-RELEASE releng/14.1-n267679-10e31f0946d8 GENERIC\n", 192)
         + pad(b"page fault", 175) + bytes([compression]) + struct.pack(">QI", length, 0))
    parity = 0
    for (w,) in struct.iter_unpack(">I", h):
        parity ^= w
    return h + struct.pack(">I", parity)


def kdh_v1():
    h = (pad(b"FreeBSD Kernel Dump", 20) + pad(b"i386", 12)
         + struct.pack(">IIQQI", 1, 2, 1 << 30, 1000000000, 512)
         + pad(b"oldbox", 64) + pad(b"FreeBSD 10.3-RELEASE #0\n", 192) + pad(b"trap 12", 192))
    parity = 0
    for (w,) in struct.iter_unpack(">I", h):
        parity ^= w
    return h + struct.pack(">I", parity)


def ekcd(cipher, keylen, total):
    blob = bytes([cipher]) + bytes(range(1, 33)) + struct.pack(">I", keylen) + b"\x5a" * keylen
    return pad(blob, total)


write("netdump_header", "herald-empty", msg(1, 1, 0, b""))
write("netdump_header", "herald-path", msg(1, 1, 0, b"crash/db1\0"))
write("netdump_header", "vmcore", msg(3, 7, 0x10000, bytes(range(256)) * 4))
write("netdump_header", "kdh", msg(4, 900, 0, kdh_v4()))
write("netdump_header", "ekcd-key", msg(5, 2, 1448, b"\0" * 1448))
write("netdump_header", "finished", msg(2, 901, 0, b""))

write("ack", "seq1", struct.pack(">I", 1))
write("ack", "seq-big", struct.pack(">I", 0xFFFFFFFE))

write("kdh", "v4-amd64", kdh_v4())
write("kdh", "v4-ekcd-zstd", kdh_v4(keysize=4096, compression=2))
write("kdh", "v4-text", kdh_v4(magic=b"FreeBSD Text Dump", arch=b"aarch64"))
write("kdh", "v1-i386", kdh_v1())

write("ekcd_blob", "chacha-rsa2048-netdump", ekcd(2, 256, 4096))
write("ekcd_blob", "aes-rsa4096-disk", ekcd(1, 512, 1024))
write("ekcd_blob", "none-empty", ekcd(0, 0, 37))
