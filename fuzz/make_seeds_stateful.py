#!/usr/bin/env python3
"""Seeds for the stateful and crypto targets (seal_header, chunk_open, receiver_session, client_datagram).

seal_header takes real seal headers (`key.*` files a receiver stored) given on the command line:
    ./make_seeds_stateful.py [KEYBLOB...]
The other seeds are op sequences in each target's own input format (see the comments in fuzz_targets/).
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# seal_header: real headers
for i, path in enumerate(sys.argv[1:]):
    with open(path, "rb") as f:
        write("seal_header", "real-%d" % i, f.read())

# chunk_open: mode byte, index (u64 BE), then a record (even modes) or flip position + plaintext (odd modes)
write("chunk_open", "forged-chacha", bytes([0]) + struct.pack(">Q", 0) + bytes(4096 + 16))
write("chunk_open", "forged-aes-trailer", bytes([2]) + struct.pack(">Q", 3) + bytes(48))
write("chunk_open", "roundtrip-chacha", bytes([1]) + struct.pack(">QH", 5, 77) + bytes(range(256)) * 16)
write("chunk_open", "roundtrip-aes-short", bytes([3]) + struct.pack(">QH", 2**63, 3) + b"panic: page fault")


# receiver_session: herald seqno byte + 8 path bytes, then ops (see receiver_session.rs)
def msg(mtype, seq, off64, length, fill, src=0):
    # op = src<<6 | 1 (structured); type, seqno, offset/64 (u16), len (u16), fill
    return bytes([(src << 6) | 1, mtype, seq]) + struct.pack(">HHB", off64, length, fill)


herald = bytes([1]) + b"lab/h1\0\0"
plain = herald + b"".join(msg(3, 2 + i, i * 16, 1024, i) for i in range(8)) + msg(2, 20, 0, 0, 0)
write("receiver_session", "plain-complete", plain)
holes = herald + msg(3, 2, 0, 1024, 1) + msg(3, 3, 64, 1024, 2) + msg(3, 3, 0, 1024, 1) + msg(2, 4, 0, 0, 0) + msg(2, 4, 0, 0, 0)
write("receiver_session", "holes-dup-finished", holes)
sealed = (herald + bytes([5, 2]) + b"\x01\x0c" + bytes(62) + bytes([9])
          + msg(3, 3, 0, 2000, 7) + msg(4, 4, 0, 512, 0) + bytes([6, 0x10, 0]) + msg(2, 5, 0, 0, 0) + bytes([6, 0xff, 0xff]))
write("receiver_session", "sealed-key-timeout", sealed)
foreign = herald + msg(3, 2, 0, 100, 1, src=3) + msg(3, 2, 0, 100, 1, src=2) + bytes([7, 1]) + bytes([0, 4, 1, 2, 3, 4])
write("receiver_session", "foreign-and-reherald", foreign)

# client_datagram: mode byte (bit 0: sealed), then ops (see client_datagram.rs)
def ack_sent(i, src=0):
    return bytes([(src << 6) | 1]) + struct.pack(">H", i)


def write_op(n):
    return bytes([0]) + struct.pack(">H", n)


ops = ack_sent(0) + write_op(4000) + b"".join(ack_sent(i) for i in range(1, 12)) + bytes([7]) + b"".join(ack_sent(i) for i in range(12, 24))
write("client_datagram", "plain-happy", bytes([0]) + ops)
write("client_datagram", "sealed-happy", bytes([1]) + ops + write_op(8000) + b"".join(ack_sent(i) for i in range(24, 48)))
lossy = bytes([1]) + ack_sent(0) + write_op(6000) + bytes([6, 6, 5, 0, 200]) + ack_sent(3, src=2) + bytes([3 | (1 << 6), 0, 0, 0, 2]) + bytes([4, 3, 1, 2, 3]) + bytes([15])
write("client_datagram", "sealed-rto-strangers-abort", lossy)
