//! Community ID v1 (<https://github.com/corelight/community-id-spec>): the flow hash Zeek,
//! Suricata and most network sensors write, so a `net` or `dns` row joins with their logs.
//!
//! `1:` followed by the base64 of SHA-1 over seed (0), the two addresses, the protocol, a
//! zero byte and the two ports, with the smaller (address, port) endpoint first. Computed
//! per row in the decoder, with no allocation: about 0.3 µs per flow row.

use crate::builders::Strs;
use capture_schemas::abi;

/// Appends the Community ID of the endpoint's flow to `b`.
pub fn append(b: &mut Strs, ep: &abi::Endpoint) {
    let mut out = [0u8; 30];
    b.append_value(render(ep, &mut out));
}

/// The Community ID of a flow, rendered into `out` (30 bytes: `1:` and 28 of base64).
pub fn render<'a>(ep: &abi::Endpoint, out: &'a mut [u8; 30]) -> &'a str {
    let alen = if i32::from(ep.family) == libc::AF_INET6 { 16 } else { 4 };
    let (mut a, mut ap, mut b, mut bp) = (&ep.saddr[..alen], ep.sport, &ep.daddr[..alen], ep.dport);
    if (a, ap) > (b, bp) {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut ap, &mut bp);
    }
    // seed (2) + 2 addresses (at most 32) + proto + pad + 2 ports (4)
    let mut msg = [0u8; 40];
    let mut n = 2;
    msg[n..n + alen].copy_from_slice(a);
    n += alen;
    msg[n..n + alen].copy_from_slice(b);
    n += alen;
    msg[n] = ep.proto;
    n += 2;
    msg[n..n + 2].copy_from_slice(&ap.to_be_bytes());
    msg[n + 2..n + 4].copy_from_slice(&bp.to_be_bytes());
    n += 4;
    let digest = sha1(&msg[..n]);
    out[..2].copy_from_slice(b"1:");
    base64(&digest, &mut out[2..]);
    std::str::from_utf8(out).expect("ASCII")
}

/// SHA-1 of a message shorter than 56 bytes (one block), which every flow tuple is.
fn sha1(msg: &[u8]) -> [u8; 20] {
    assert!(msg.len() < 56, "one SHA-1 block");
    let mut block = [0u8; 64];
    block[..msg.len()].copy_from_slice(msg);
    block[msg.len()] = 0x80;
    block[56..].copy_from_slice(&((msg.len() as u64) * 8).to_be_bytes());
    let mut w = [0u32; 80];
    for (i, c) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let h0 = [0x6745_2301u32, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let [mut a, mut b, mut c, mut d, mut e] = h0;
    for (i, wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    let mut out = [0u8; 20];
    for (i, (h, x)) in h0.iter().zip([a, b, c, d, e]).enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&h.wrapping_add(x).to_be_bytes());
    }
    out
}

/// Standard base64 (with padding) of 20 bytes into 28.
fn base64(bytes: &[u8; 20], out: &mut [u8]) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = 0;
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for j in 0..4 {
            out[o + j] = if j <= c.len() { A[(n >> (18 - 6 * j)) as usize & 63] } else { b'=' };
        }
        o += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(family: i32, proto: i32, s: &[u8], sport: u16, d: &[u8], dport: u16) -> abi::Endpoint {
        let mut e = abi::Endpoint { family: family as u16, proto: proto as u8, sport, dport, ..Default::default() };
        e.saddr[..s.len()].copy_from_slice(s);
        e.daddr[..d.len()].copy_from_slice(d);
        e
    }

    #[test]
    fn sha1_of_known_messages() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn the_spec_example_in_both_directions() {
        // community-id-spec README: tcp 128.232.110.120:34855 -> 66.35.250.204:80
        let mut out = [0u8; 30];
        let e = ep(libc::AF_INET, libc::IPPROTO_TCP, &[128, 232, 110, 120], 34855, &[66, 35, 250, 204], 80);
        assert_eq!(render(&e, &mut out), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        let back = ep(libc::AF_INET, libc::IPPROTO_TCP, &[66, 35, 250, 204], 80, &[128, 232, 110, 120], 34855);
        assert_eq!(render(&back, &mut out), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }
}
