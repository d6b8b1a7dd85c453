//! DNS messages as they cross the wire (RFC 1035), decoded without allocating.
//!
//! Names are assembled in a stack buffer, following compression pointers a bounded number
//! of times, so a hostile message can neither loop nor overrun.

use std::fmt::Write;

use arrow_array::builder::StringBuilder;

/// Longest presentation name (RFC 1035: 255 bytes on the wire).
pub const NAME_MAX: usize = 255;
const MAX_JUMPS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn rcode(&self) -> u16 {
        self.flags & 0x000f
    }
}

#[inline]
fn be16(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

pub fn header(msg: &[u8]) -> Option<Header> {
    Some(Header { id: be16(msg, 0)?, flags: be16(msg, 2)?, qdcount: be16(msg, 4)?, ancount: be16(msg, 6)? })
}

/// A name decoded into a fixed buffer: dotted, no trailing dot, "." for the root.
pub struct Name {
    buf: [u8; NAME_MAX + 1],
    len: usize,
}

impl Name {
    pub fn new() -> Name {
        Name { buf: [0; NAME_MAX + 1], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Decodes the name at `pos`; returns the position just after it in `msg` (after the
    /// first compression pointer, if any), or `None` when the name is malformed.
    pub fn read(&mut self, msg: &[u8], mut pos: usize) -> Option<usize> {
        self.len = 0;
        let mut end = None;
        let mut jumps = 0;
        loop {
            let len = *msg.get(pos)? as usize;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    if self.len == 0 {
                        self.buf[0] = b'.';
                        self.len = 1;
                    }
                    return Some(end.unwrap_or(pos + 1));
                }
                0x00 => {
                    let label = msg.get(pos + 1..pos + 1 + len)?;
                    let dot = usize::from(self.len > 0);
                    if self.len + dot + len > NAME_MAX {
                        return None;
                    }
                    if dot == 1 {
                        self.buf[self.len] = b'.';
                        self.len += 1;
                    }
                    self.buf[self.len..self.len + len].copy_from_slice(label);
                    self.len += len;
                    pos += 1 + len;
                }
                0xc0 => {
                    let target = (be16(msg, pos)? & 0x3fff) as usize;
                    jumps += 1;
                    if jumps > MAX_JUMPS || target >= msg.len() {
                        return None;
                    }
                    end.get_or_insert(pos + 2);
                    pos = target;
                }
                _ => return None, // 0x40 and 0x80 label types are obsolete or reserved.
            }
        }
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::new()
    }
}

pub fn type_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => return None,
    })
}

pub fn rcode_name(r: u16) -> Option<&'static str> {
    Some(match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return None,
    })
}

/// Writes a query type as text into the builder's current value.
pub fn write_type(b: &mut impl Write, t: u16) {
    match type_name(t) {
        Some(s) => b.write_str(s),
        None => write!(b, "TYPE{t}"),
    }
    .ok();
}

/// Writes an rcode as text into the builder's current value.
pub fn write_rcode(b: &mut impl Write, r: u16) {
    match rcode_name(r) {
        Some(s) => b.write_str(s),
        None => write!(b, "RCODE{r}"),
    }
    .ok();
}

/// The question: name, type and class; returns the position after the question.
pub fn question(msg: &[u8], name: &mut Name) -> Option<(u16, u16, usize)> {
    let pos = name.read(msg, 12)?;
    let qtype = be16(msg, pos)?;
    let qclass = be16(msg, pos + 2)?;
    Some((qtype, qclass, pos + 4))
}

/// Writes a class's mnemonic (IN, CH, HS, ANY) or `CLASSnnn` (RFC 3597).
pub fn write_class(b: &mut impl Write, c: u16) {
    match c {
        1 => b.write_str("IN"),
        3 => b.write_str("CH"),
        4 => b.write_str("HS"),
        255 => b.write_str("ANY"),
        _ => write!(b, "CLASS{c}"),
    }
    .ok();
}

/// Where the answer records go: their data as text, and beside it each record's owner
/// name, type and TTL (one item per record in each list, in message order).
pub struct AnswerSink<'a> {
    pub data: &'a mut StringBuilder,
    pub names: &'a mut StringBuilder,
    pub types: &'a mut StringBuilder,
    pub ttls: &'a mut arrow_array::builder::Int64Builder,
}

/// Walks up to `count` answer records from `pos`, appending one item per record to each
/// list of `out`. Returns `false` when the section ended early or held a malformed record
/// (the records before it are kept).
pub fn answers(msg: &[u8], mut pos: usize, count: u16, out: AnswerSink<'_>, name: &mut Name) -> bool {
    let AnswerSink { data: out, names, types, ttls } = out;
    for _ in 0..count {
        let Some(after_name) = name.read(msg, pos) else { return false };
        let (Some(rtype), Some(rdlen)) = (be16(msg, after_name), be16(msg, after_name + 8)) else { return false };
        let (Some(hi), Some(lo)) = (be16(msg, after_name + 4), be16(msg, after_name + 6)) else { return false };
        let rdata_at = after_name + 10;
        let Some(rdata) = msg.get(rdata_at..rdata_at + rdlen as usize) else { return false };
        // The record is whole: one item in every list from here on, whatever its data.
        crate::strings::write_lossy(names, name.as_bytes());
        names.append_value("");
        write_type(types, rtype);
        types.append_value("");
        ttls.append_value(i64::from((u32::from(hi) << 16) | u32::from(lo)));
        pos = rdata_at + rdlen as usize;
        let ok = match (rtype, rdata.len()) {
            (1, 4) => {
                crate::strings::write_ipv4(out, [rdata[0], rdata[1], rdata[2], rdata[3]]);
                true
            }
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                write!(out, "{}", std::net::Ipv6Addr::from(a)).is_ok()
            }
            (2 | 5 | 12, _) => match name.read(msg, rdata_at) {
                Some(_) => {
                    crate::strings::write_lossy(out, name.as_bytes());
                    true
                }
                None => false,
            },
            (15, n) if n >= 3 => match name.read(msg, rdata_at + 2) {
                Some(_) => {
                    let pref = u16::from_be_bytes([rdata[0], rdata[1]]);
                    let _ = write!(out, "{pref} ");
                    crate::strings::write_lossy(out, name.as_bytes());
                    true
                }
                None => false,
            },
            (33, n) if n >= 7 => match name.read(msg, rdata_at + 6) {
                // SRV: priority, weight, port, target.
                Some(_) => {
                    let f = |i: usize| u16::from_be_bytes([rdata[i], rdata[i + 1]]);
                    let _ = write!(out, "{} {} {} ", f(0), f(2), f(4));
                    crate::strings::write_lossy(out, name.as_bytes());
                    true
                }
                None => false,
            },
            (16, _) => {
                // Character strings, each length-prefixed, joined by spaces.
                let mut i = 0;
                while i < rdata.len() {
                    let l = rdata[i] as usize;
                    let s = &rdata[i + 1..(i + 1 + l).min(rdata.len())];
                    if i > 0 {
                        let _ = out.write_char(' ');
                    }
                    crate::strings::write_lossy(out, s);
                    i += 1 + l;
                }
                true
            }
            (t, _) => {
                write_type(out, t);
                true
            }
        };
        out.append_value("");
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_bounded_pointers() {
        // "www.example.com" at 12, then a pointer to it at 29.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x03www\x07example\x03com\x00");
        let ptr_at = msg.len();
        msg.extend_from_slice(&[0xc0, 12]);
        let mut n = Name::new();
        assert_eq!(n.read(&msg, 12), Some(29));
        assert_eq!(n.as_bytes(), b"www.example.com");
        assert_eq!(n.read(&msg, ptr_at), Some(ptr_at + 2));
        assert_eq!(n.as_bytes(), b"www.example.com");
        // A pointer to itself must not loop.
        let looped = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12];
        assert_eq!(n.read(&looped, 12), None);
        // A label running past the end.
        assert_eq!(n.read(b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10abc", 12), None);
    }
}
