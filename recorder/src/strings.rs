//! Appending kernel bytes to string columns ([`Strs`], or arrow's `StringBuilder` inside a
//! list) without allocating.

use arrow_array::builder::StringBuilder;

use crate::builders::{Bins, Strs};

/// A string column the decoder writes into: [`Strs`], or arrow's `StringBuilder` for a
/// list's items. `write_str` adds to the current value, `append_str` ends it.
pub trait Text: std::fmt::Write {
    fn append_str(&mut self, s: &str);
}

impl Text for Strs {
    #[inline]
    fn append_str(&mut self, s: &str) {
        self.append_value(s);
    }
}

impl Text for StringBuilder {
    #[inline]
    fn append_str(&mut self, s: &str) {
        self.append_value(s);
    }
}

/// `bytes` as text when they are valid UTF-8. Kernel strings (paths, command names) are
/// nearly always ASCII: that is checked a word at a time, inline, before the full
/// validation (a call that cost the file table's decode a sixth of its instructions).
#[inline]
pub fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Appends `bytes` as one string value. Invalid UTF-8 is replaced by U+FFFD chunk by chunk,
/// straight into the builder; returns `false` when a replacement was needed.
#[inline]
pub fn append_lossy(b: &mut impl Text, bytes: &[u8]) -> bool {
    if let Some(s) = as_text(bytes) {
        b.append_str(s);
        return true;
    }
    write_lossy(b, bytes);
    b.append_str("");
    false
}

/// Appends `bytes` as one string value, exactly when they are valid UTF-8 (`raw` gets a
/// null); else with U+FFFD for each invalid sequence, and the exact bytes in `raw`.
/// Returns whether they were valid.
#[inline]
pub fn append_exact(s: &mut impl Text, raw: &mut Bins, bytes: &[u8]) -> bool {
    let ok = append_lossy(s, bytes);
    if ok {
        raw.append_null();
    } else {
        raw.append_value(bytes);
    }
    ok
}

/// Writes `bytes` into the builder's current value (finished later by `append_value`).
#[inline]
pub fn write_lossy(b: &mut impl Text, bytes: &[u8]) -> bool {
    // Valid text, nearly always: one validation pass (Utf8Chunks is slower at it).
    if let Some(s) = as_text(bytes) {
        let _ = b.write_str(s);
        return true;
    }
    let mut valid = true;
    for chunk in bytes.utf8_chunks() {
        let _ = b.write_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            let _ = b.write_str("\u{FFFD}");
            valid = false;
        }
    }
    valid
}

/// The bytes of a NUL-terminated fixed buffer (`comm`, `tty`) up to the first NUL.
#[inline]
pub fn c_str(buf: &[u8]) -> &[u8] {
    match buf.iter().position(|&c| c == 0) {
        Some(n) => &buf[..n],
        None => buf,
    }
}

/// Writes an IPv4 or IPv6 address as text: dotted quad without formatting machinery,
/// IPv6 through `Ipv6Addr`'s Display (RFC 5952, no allocation).
#[inline]
pub fn append_addr(b: &mut impl Text, family: u16, addr: &[u8; 16]) {
    if family == libc::AF_INET6 as u16 {
        let _ = write!(b, "{}", std::net::Ipv6Addr::from(*addr));
    } else {
        write_ipv4(b, [addr[0], addr[1], addr[2], addr[3]]);
    }
    b.append_str("");
}

#[inline]
pub fn write_ipv4(b: &mut impl std::fmt::Write, a: [u8; 4]) {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in a.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + (octet / 10) % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    // The buffer holds only ASCII digits and dots.
    let _ = b.write_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn lossy_and_addresses() {
        let mut b = StringBuilder::new();
        assert!(append_lossy(&mut b, b"plain"));
        assert!(!append_lossy(&mut b, b"bad\xffbyte"));
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[10, 0, 200, 7]);
        append_addr(&mut b, libc::AF_INET as u16, &v4);
        let v6: [u8; 16] = "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        append_addr(&mut b, libc::AF_INET6 as u16, &v6);
        let a = b.finish();
        assert_eq!(a.len(), 4);
        assert_eq!(a.value(0), "plain");
        assert_eq!(a.value(1), "bad\u{FFFD}byte");
        assert_eq!(a.value(2), "10.0.200.7");
        assert_eq!(a.value(3), "2001:db8::1");
        assert_eq!(c_str(b"bash\0\0\0"), b"bash");
    }
}
