//! The netdump message: a 24-byte big-endian header followed by the payload (spec §1.2, §1.3).
//!
//! ```text
//!  0               4               8                              16              20              24
//! +---------------+---------------+-------------------------------+---------------+---------------+----
//! |    mh_type    |   mh_seqno    |           mh_offset           |    mh_len     |    mh_aux2    | payload (mh_len bytes)
//! +---------------+---------------+-------------------------------+---------------+---------------+----
//! ```

use crate::field::{self, Field};
use crate::{Error, Result};

/// Length of the message header.
pub const HEADER_LEN: usize = 24;
/// UDP port the server listens on for heralds.
pub const HERALD_PORT: u16 = 20023;
/// UDP port the client sends from and receives acks on.
pub const CLIENT_PORT: u16 = 20024;
/// Largest payload that fits one UDP datagram over IPv4.
pub const MAX_PAYLOAD: usize = 65_507 - HEADER_LEN;
/// Longest herald payload (path plus its NUL) netdumpd honours.
pub const MAX_HERALD_PATH: usize = 1024;

mod layout {
    pub const TYPE: usize = 0;
    pub const SEQNO: usize = 4;
    pub const OFFSET: usize = 8;
    pub const LEN: usize = 16;
    pub const AUX2: usize = 20;
}

/// The netdump message types (spec §1.3). No others exist.
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Start of a dump; the payload is an optional NUL-terminated relative path.
    Herald = 1,
    /// End of a dump; empty.
    Finished = 2,
    /// Dump data at `offset`.
    Vmcore = 3,
    /// The 512-byte kernel dump header, at offset 0.
    Kdh = 4,
    /// The EKCD key blob (or, for sealed dumps, the seal header), possibly split.
    EkcdKey = 5,
}

impl TryFrom<u32> for MessageType {
    type Error = Error;
    fn try_from(value: u32) -> Result<Self> {
        Ok(match value {
            1 => MessageType::Herald,
            2 => MessageType::Finished,
            3 => MessageType::Vmcore,
            4 => MessageType::Kdh,
            5 => MessageType::EkcdKey,
            other => return Err(Error::UnknownType(other)),
        })
    }
}

impl From<MessageType> for u32 {
    fn from(t: MessageType) -> u32 {
        t as u32
    }
}

/// A read/write view of a netdump message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Accessors never panic, but read zeros outside a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds a header and exactly `mh_len` payload bytes, netdumpd's rule: a datagram
    /// with any other size is "Bad packet size" and is not acked.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        // u64 arithmetic: 24 + u32::MAX does not fit a 32-bit usize.
        let wanted = HEADER_LEN as u64 + u64::from(self.payload_len());
        match (len as u64).cmp(&wanted) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Equal => Ok(()),
            core::cmp::Ordering::Greater => Err(Error::Malformed),
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `mh_type`, raw (see [`MessageType`]).
    pub fn msg_type(&self) -> u32 {
        field::read_u32(self.buffer.as_ref(), layout::TYPE)
    }

    /// `mh_seqno`.
    pub fn seqno(&self) -> u32 {
        field::read_u32(self.buffer.as_ref(), layout::SEQNO)
    }

    /// `mh_offset`: where the payload goes in the destination file.
    pub fn offset(&self) -> u64 {
        field::read_u64(self.buffer.as_ref(), layout::OFFSET)
    }

    /// `mh_len`: payload length, header not included.
    pub fn payload_len(&self) -> u32 {
        field::read_u32(self.buffer.as_ref(), layout::LEN)
    }

    /// `mh_aux2` (`mh__pad` before debugnet); netdump sends 0.
    pub fn aux2(&self) -> u32 {
        field::read_u32(self.buffer.as_ref(), layout::AUX2)
    }

    /// The payload: `mh_len` bytes after the header (clamped to the buffer on an unchecked packet).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        field::bytes(data, Self::payload_range(self.payload_len(), data.len()))
    }

    fn payload_range(payload_len: u32, buffer_len: usize) -> Field {
        let end = HEADER_LEN
            .saturating_add(usize::try_from(payload_len).unwrap_or(usize::MAX))
            .min(buffer_len);
        HEADER_LEN..end.max(HEADER_LEN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets `mh_type`. Panics if the buffer is shorter than the header.
    pub fn set_msg_type(&mut self, value: MessageType) {
        field::write_u32(self.buffer.as_mut(), layout::TYPE, value.into());
    }

    /// Sets `mh_seqno`. Panics if the buffer is shorter than the header.
    pub fn set_seqno(&mut self, value: u32) {
        field::write_u32(self.buffer.as_mut(), layout::SEQNO, value);
    }

    /// Sets `mh_offset`. Panics if the buffer is shorter than the header.
    pub fn set_offset(&mut self, value: u64) {
        field::write_u64(self.buffer.as_mut(), layout::OFFSET, value);
    }

    /// Sets `mh_len`. Panics if the buffer is shorter than the header.
    pub fn set_payload_len(&mut self, value: u32) {
        field::write_u32(self.buffer.as_mut(), layout::LEN, value);
    }

    /// Sets `mh_aux2`. Panics if the buffer is shorter than the header.
    pub fn set_aux2(&mut self, value: u32) {
        field::write_u32(self.buffer.as_mut(), layout::AUX2, value);
    }

    /// The payload, mutable: `mh_len` bytes after the header (clamped to the buffer).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = Self::payload_range(self.payload_len(), self.buffer.as_ref().len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// A parsed netdump message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Message type.
    pub msg_type: MessageType,
    /// Sequence number (1 for the herald, +1 per message).
    pub seqno: u32,
    /// Offset of the payload in its destination file.
    pub offset: u64,
    /// `mh_aux2`: 0 for netdump.
    pub aux2: u32,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a message: exact length (netdumpd's rule) and a known type. No per-type rule is applied
    /// (netdumpd acks a short KDH too); see [`herald_path`](Self::herald_path) for the herald's.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &'a Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let msg_type = MessageType::try_from(packet.msg_type())?;
        let data: &'a [u8] = packet.buffer.as_ref();
        Ok(Repr {
            msg_type,
            seqno: packet.seqno(),
            offset: packet.offset(),
            aux2: packet.aux2(),
            payload: field::bytes(data, HEADER_LEN..data.len()),
        })
    }

    /// Parses a whole datagram; shorthand for `Packet::new_checked` + [`parse`](Self::parse).
    pub fn parse_bytes(datagram: &'a [u8]) -> Result<Repr<'a>> {
        let packet = Packet::new_checked(datagram)?;
        let repr = Repr::parse(&packet)?;
        // `parse` borrows the temporary packet, so rebuild the payload slice from the datagram itself.
        Ok(Repr {
            payload: field::bytes(datagram, HEADER_LEN..datagram.len()),
            ..repr
        })
    }

    /// Bytes needed to emit this message: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes header and payload into `packet`. Panics if its buffer is shorter than
    /// [`buffer_len`](Self::buffer_len) (a caller bug). The payload must not exceed [`MAX_PAYLOAD`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.payload.len() <= MAX_PAYLOAD);
        packet.set_msg_type(self.msg_type);
        packet.set_seqno(self.seqno);
        packet.set_offset(self.offset);
        packet.set_payload_len(u32::try_from(self.payload.len()).unwrap_or(u32::MAX));
        packet.set_aux2(self.aux2);
        let buffer = packet.buffer.as_mut();
        buffer[HEADER_LEN..HEADER_LEN + self.payload.len()].copy_from_slice(self.payload);
    }

    /// The herald's path without its NUL, if this is a herald carrying a path netdumpd would use:
    /// 0 < `mh_len` <= 1024, last byte NUL and no other NUL. `Some(b"")` for a lone NUL.
    pub fn herald_path(&self) -> Option<&'a [u8]> {
        if self.msg_type != MessageType::Herald || self.payload.len() > MAX_HERALD_PATH {
            return None;
        }
        match self.payload.split_last() {
            Some((0, path)) if !path.contains(&0) => Some(path),
            _ => None,
        }
    }
}

/// Writes only the 24-byte header in front of a payload already in place at `buf[24..24 + payload_len]`,
/// so a sender can fill payloads in place without a copy.
pub fn emit_header(
    buf: &mut [u8],
    msg_type: MessageType,
    seqno: u32,
    offset: u64,
    payload_len: u32,
    aux2: u32,
) -> Result<()> {
    if payload_len as u64 > MAX_PAYLOAD as u64 {
        return Err(Error::Malformed);
    }
    if (buf.len() as u64) < HEADER_LEN as u64 + u64::from(payload_len) {
        return Err(Error::BufferTooSmall);
    }
    let mut packet = Packet::new_unchecked(buf);
    packet.set_msg_type(msg_type);
    packet.set_seqno(seqno);
    packet.set_offset(offset);
    packet.set_payload_len(payload_len);
    packet.set_aux2(aux2);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    // A VMCORE message as a FreeBSD 13 client sends it: seqno 7, offset 0x10000, 4 payload bytes.
    const VMCORE: [u8; 28] = [
        0, 0, 0, 3, // type
        0, 0, 0, 7, // seqno
        0, 0, 0, 0, 0, 1, 0, 0, // offset
        0, 0, 0, 4, // len
        0, 0, 0, 0, // aux2
        0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&VMCORE[..]).unwrap();
        assert_eq!(p.msg_type(), 3);
        assert_eq!(p.seqno(), 7);
        assert_eq!(p.offset(), 0x1_0000);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.aux2(), 0);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.msg_type, MessageType::Vmcore);
        assert_eq!(r.payload, &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Repr::parse_bytes(&VMCORE).unwrap(), r);
    }

    #[test]
    fn construct() {
        let repr = Repr {
            msg_type: MessageType::Vmcore,
            seqno: 7,
            offset: 0x1_0000,
            aux2: 0,
            payload: &[0xde, 0xad, 0xbe, 0xef],
        };
        let mut buf = [0xffu8; 28];
        assert_eq!(repr.buffer_len(), 28);
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, VMCORE);

        let mut buf2 = [0u8; 28];
        buf2[24..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        emit_header(&mut buf2, MessageType::Vmcore, 7, 0x1_0000, 4, 0).unwrap();
        assert_eq!(buf2, VMCORE);
        assert_eq!(
            emit_header(&mut buf2, MessageType::Vmcore, 7, 0, 5, 0),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            emit_header(&mut buf2[..23], MessageType::Finished, 7, 0, 0, 0),
            Err(Error::BufferTooSmall)
        );
        let mut big = [0u8; 24];
        assert_eq!(
            emit_header(&mut big, MessageType::Vmcore, 1, 0, u32::MAX, 0),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn exact_length_rule() {
        assert_eq!(Packet::new_checked(&VMCORE[..23]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&VMCORE[..27]).unwrap_err(), Error::Truncated);
        let mut long = [0u8; 29];
        long[..28].copy_from_slice(&VMCORE);
        assert_eq!(Packet::new_checked(&long[..]).unwrap_err(), Error::Malformed);
        // mh_len = u32::MAX must not overflow on 32-bit targets.
        let mut huge = VMCORE;
        huge[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Packet::new_checked(&huge[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn unknown_types_are_rejected() {
        for t in [0u32, 6, 0x0300_0000, u32::MAX] {
            let mut m = VMCORE;
            m[..4].copy_from_slice(&t.to_be_bytes());
            assert_eq!(Repr::parse_bytes(&m), Err(Error::UnknownType(t)));
        }
        for t in 1..=5u32 {
            assert_eq!(u32::from(MessageType::try_from(t).unwrap()), t);
        }
    }

    #[test]
    fn unchecked_accessors_do_not_panic() {
        let p = Packet::new_unchecked(&VMCORE[..10]);
        assert_eq!(p.seqno(), 7);
        assert_eq!(p.offset(), 0);
        assert_eq!(p.payload(), &[] as &[u8]);
        let p = Packet::new_unchecked(&VMCORE[..26]);
        assert_eq!(p.payload(), &[0xde, 0xad]);
        let mut short = [0u8; 3];
        assert!(Packet::new_unchecked(&mut short[..]).payload_mut().is_empty());
    }

    fn herald(payload: &[u8]) -> Repr<'_> {
        Repr {
            msg_type: MessageType::Herald,
            seqno: 1,
            offset: 0,
            aux2: 0,
            payload,
        }
    }

    #[test]
    fn herald_paths() {
        assert_eq!(herald(b"crash/db1\0").herald_path(), Some(&b"crash/db1"[..]));
        assert_eq!(herald(b"\0").herald_path(), Some(&b""[..]));
        assert_eq!(herald(b"").herald_path(), None);
        assert_eq!(herald(b"no-nul").herald_path(), None);
        assert_eq!(herald(b"a\0b\0").herald_path(), None);
        let mut long = [b'x'; MAX_HERALD_PATH + 1];
        long[MAX_HERALD_PATH] = 0;
        assert_eq!(herald(&long).herald_path(), None);
        assert_eq!(herald(&long[1..]).herald_path().map(<[u8]>::len), Some(1023));
        let vm = Repr {
            msg_type: MessageType::Vmcore,
            ..herald(b"x\0")
        };
        assert_eq!(vm.herald_path(), None);
    }

    #[test]
    fn payload_mut_writes_in_place() {
        let mut buf = VMCORE;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.payload_mut().copy_from_slice(b"abcd");
        p.set_seqno(8);
        assert_eq!(p.payload(), b"abcd");
        assert_eq!(p.into_inner()[4..8], [0, 0, 0, 8]);
    }

    fn arb_type() -> impl Strategy<Value = MessageType> {
        (1u32..=5).prop_map(|t| MessageType::try_from(t).unwrap())
    }

    proptest! {
        #[test]
        fn round_trip(t in arb_type(), seqno: u32, offset: u64, aux2: u32,
                      payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let repr = Repr { msg_type: t, seqno, offset, aux2, payload: &payload };
            let mut buf = [0u8; 24 + 2048];
            let buf = &mut buf[..repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut *buf));
            let packet = Packet::new_checked(&*buf).unwrap();
            prop_assert_eq!(Repr::parse(&packet).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(repr) = Repr::parse_bytes(&data) {
                prop_assert_eq!(repr.buffer_len(), data.len());
                let _ = repr.herald_path();
            }
            let p = Packet::new_unchecked(&data[..]);
            let _ = (p.msg_type(), p.seqno(), p.offset(), p.payload_len(), p.aux2(), p.payload());
        }
    }
}
