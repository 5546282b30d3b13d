//! The netdump ack (server → client): exactly 4 bytes, the acknowledged seqno, big-endian (spec §1.4).
//!
//! ```text
//!  0               4
//! +---------------+
//! |   na_seqno    |
//! +---------------+
//! ```
//!
//! A debugnet (13+) client ignores any datagram of another size, so [`Packet::new_checked`] insists on
//! exactly [`ACK_LEN`] bytes.

use crate::field;
use crate::{Error, Result};

/// Length of an ack.
pub const ACK_LEN: usize = 4;

/// A read/write view of an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; [`seqno`](Self::seqno) reads 0 from a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer is exactly [`ACK_LEN`] bytes long.
    pub fn check_len(&self) -> Result<()> {
        match self.buffer.as_ref().len() {
            ACK_LEN => Ok(()),
            n if n < ACK_LEN => Err(Error::Truncated),
            _ => Err(Error::Malformed),
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The acknowledged sequence number.
    pub fn seqno(&self) -> u32 {
        field::read_u32(self.buffer.as_ref(), 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the acknowledged sequence number. Panics if the buffer is shorter than 4 bytes.
    pub fn set_seqno(&mut self, value: u32) {
        field::write_u32(self.buffer.as_mut(), 0, value);
    }
}

/// A parsed ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The acknowledged sequence number.
    pub seqno: u32,
}

impl Repr {
    /// Parses an ack datagram (exactly 4 bytes).
    pub fn parse(buf: &[u8]) -> Result<Repr> {
        let packet = Packet::new_checked(buf)?;
        Ok(Repr {
            seqno: packet.seqno(),
        })
    }

    /// Always [`ACK_LEN`].
    pub const fn buffer_len(&self) -> usize {
        ACK_LEN
    }

    /// Writes the ack into the first 4 bytes of `buf`. Panics if `buf` is shorter (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) {
        Packet::new_unchecked(buf).set_seqno(self.seqno);
    }

    /// The ack as an array, for senders that want a value.
    pub const fn to_bytes(&self) -> [u8; ACK_LEN] {
        self.seqno.to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_exactly_four_bytes() {
        assert_eq!(Repr::parse(&[0, 0, 1, 2]), Ok(Repr { seqno: 0x102 }));
        assert_eq!(Repr::parse(&[0, 0, 1]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&[]), Err(Error::Truncated));
        // 12.x would take the first 4 bytes; debugnet drops it, and so do we.
        assert_eq!(Repr::parse(&[0, 0, 1, 2, 3]), Err(Error::Malformed));
    }

    #[test]
    fn emit_big_endian() {
        let mut buf = [0u8; 4];
        Repr { seqno: 0x0102_0304 }.emit(&mut buf);
        assert_eq!(buf, [1, 2, 3, 4]);
        assert_eq!(Repr { seqno: 0x0102_0304 }.to_bytes(), [1, 2, 3, 4]);
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_seqno(9);
        assert_eq!(p.seqno(), 9);
        assert_eq!(p.into_inner(), &[0, 0, 0, 9]);
        assert_eq!(Packet::new_unchecked(&[1u8][..]).seqno(), 0);
    }

    proptest! {
        #[test]
        fn round_trip(seqno: u32) {
            let repr = Repr { seqno };
            let mut buf = [0u8; ACK_LEN];
            repr.emit(&mut buf);
            prop_assert_eq!(Repr::parse(&buf[..repr.buffer_len()]), Ok(repr));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let parsed = Repr::parse(&data);
            prop_assert_eq!(parsed.is_ok(), data.len() == ACK_LEN);
        }
    }
}
