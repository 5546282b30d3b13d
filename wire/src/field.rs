//! Panic-free big-endian field access shared by the modules.
//!
//! Readers return zero (or an empty slice) when the field lies outside the buffer, so accessors of an
//! unchecked packet cannot panic; `new_checked` is what makes the values meaningful.

use core::ops::Range;

/// A byte range inside a fixed layout.
pub(crate) type Field = Range<usize>;

#[inline]
pub(crate) fn bytes(buf: &[u8], field: Field) -> &[u8] {
    buf.get(field).unwrap_or(&[])
}

#[inline]
pub(crate) fn array<const N: usize>(buf: &[u8], start: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(start..start.saturating_add(N)) {
        out.copy_from_slice(src);
    }
    out
}

#[inline]
pub(crate) fn read_u8(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(buf, at))
}

#[inline]
pub(crate) fn read_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(array(buf, at))
}

/// Panics if the field is outside `buf` (caller's buffer, see the crate's no-panic promise).
#[inline]
pub(crate) fn write_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Panics if the field is outside `buf` (caller's buffer, see the crate's no-panic promise).
#[inline]
pub(crate) fn write_u64(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// The C string in a NUL-padded field: the bytes before the first NUL (the whole field if there is none).
#[inline]
pub(crate) fn c_str(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// Writes `s` into a NUL-padded field. Rejects strings that do not fit or that contain a NUL (they would not
/// read back the same). A string may fill the whole field, as `strncpy` allows.
pub(crate) fn write_c_str(field: &mut [u8], s: &[u8]) -> crate::Result<()> {
    if s.len() > field.len() || s.contains(&0) {
        return Err(crate::Error::Malformed);
    }
    let (head, tail) = field.split_at_mut(s.len());
    head.copy_from_slice(s);
    tail.fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn readers_never_panic_on_short_buffers() {
        assert_eq!(read_u32(&[1, 2, 3], 0), 0);
        assert_eq!(read_u64(&[], 100), 0);
        assert_eq!(read_u8(&[], usize::MAX), 0);
        assert_eq!(array::<4>(&[1, 2, 3, 4], usize::MAX - 1), [0; 4]);
        assert_eq!(bytes(&[1, 2], 1..5), &[] as &[u8]);
        assert_eq!(read_u32(&[0xde, 0xad, 0xbe, 0xef], 0), 0xdead_beef);
    }

    #[test]
    fn c_str_handling() {
        assert_eq!(c_str(b"amd64\0\0\0"), b"amd64");
        assert_eq!(c_str(b"full"), b"full");
        assert_eq!(c_str(b"\0x"), b"");
        let mut f = [0xffu8; 6];
        write_c_str(&mut f, b"abc").unwrap();
        assert_eq!(&f, b"abc\0\0\0");
        write_c_str(&mut f, b"abcdef").unwrap();
        assert_eq!(&f, b"abcdef");
        assert_eq!(write_c_str(&mut f, b"abcdefg"), Err(crate::Error::Malformed));
        assert_eq!(write_c_str(&mut f, b"a\0b"), Err(crate::Error::Malformed));
    }
}
