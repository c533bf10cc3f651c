//! Addresses and networks as the rules engine reads them, with the semantics of Python's `ipaddress`.
//!
//! The Python engine keys a rule by `str(ipaddress.ip_network(f"{ip}/{length}", strict=False))` and
//! filters with `NetworkSet.contains`; the native engine must produce the same key *text* (the shared
//! "active" map and the decisions compare it) and the same membership answers. So this module parses
//! every spelling `ipaddress` accepts (not only the canonical one the parser emits: Python-parsed events
//! are fed here too) and renders networks the way `IPv4Network.__str__` / `IPv6Network.__str__` do.

use std::fmt::Write;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ip {
    V4(u32),
    V6(u128),
}

/// A network of a rule's `networks` / `outside` filter: address (host bits clear) and prefix length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Net {
    pub address: Ip,
    pub length: u32,
}

/// `ipaddress.ip_address(text)` (IPv4 first, then IPv6 with an optional `%scope`), or `None` where it
/// raises `ValueError`.
pub fn parse(text: &[u8]) -> Option<Ip> {
    parse_v4(text).map(Ip::V4).or_else(|| parse_v6_scoped(text).map(Ip::V6))
}

/// `IPv4Address`: four decimal octets of 1-3 ASCII digits, at most 255, no leading zero.
fn parse_v4(text: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    let mut parts = 0;
    for part in text.split(|&byte| byte == b'.') {
        parts += 1;
        if parts > 4 || part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if part.len() > 1 && part[0] == b'0' {
            return None;
        }
        let octet = part.iter().fold(0u32, |octet, &digit| octet * 10 + u32::from(digit - b'0'));
        if octet > 255 {
            return None;
        }
        value = value << 8 | octet;
    }
    (parts == 4).then_some(value)
}

/// `IPv6Address` accepts `addr%scope` (a non-empty scope without another `%`); the scope does not
/// survive into a network, so it is dropped here.
fn parse_v6_scoped(text: &[u8]) -> Option<u128> {
    match text.iter().position(|&byte| byte == b'%') {
        None => parse_v6(text),
        Some(at) => {
            let scope = &text[at + 1..];
            if scope.is_empty() || scope.contains(&b'%') {
                return None;
            }
            parse_v6(&text[..at])
        }
    }
}

/// `IPv6Address._ip_int_from_string`, step by step: at least 3 colon-separated parts, a dotted quad in
/// the last part becomes two hextets, at most 9 parts, at most one `::` (an empty inner part), hextets
/// of 1-4 hex digits in either case.
fn parse_v6(text: &[u8]) -> Option<u128> {
    let mut parts: Vec<Option<&[u8]>> = text.split(|&byte| byte == b':').map(Some).collect();
    if parts.len() < 3 {
        return None;
    }
    let mut embedded = None;
    if parts.last()?.is_some_and(|part| part.contains(&b'.')) {
        let v4 = parse_v4(parts.pop()??)?;
        embedded = Some([(v4 >> 16) as u16, v4 as u16]);
        parts.extend([None, None]); // the two hextets, filled in below
    }
    if parts.len() > 9 {
        return None;
    }
    let is_empty = |part: &Option<&[u8]>| part.is_some_and(<[u8]>::is_empty);
    let mut skip = None;
    for (index, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
        if is_empty(part) {
            if skip.is_some() {
                return None;
            }
            skip = Some(index);
        }
    }
    let (mut high, mut low) = (parts.len(), 0);
    let mut skipped = 0;
    if let Some(index) = skip {
        (high, low) = (index, parts.len() - index - 1);
        let first = usize::from(is_empty(&parts[0]));
        let last = usize::from(is_empty(&parts[parts.len() - 1]));
        if (first == 1 && high != 1) || (last == 1 && low != 1) {
            return None;
        }
        (high, low) = (high - first, low - last);
        if high + low > 7 {
            return None;
        }
        skipped = 8 - high - low;
    } else if parts.len() != 8 || is_empty(&parts[0]) || is_empty(&parts[7]) {
        return None;
    }
    let mut value = 0u128;
    let mut embedded_groups = embedded.into_iter().flatten();
    let mut push = |part: &Option<&[u8]>| -> Option<()> {
        let group = match part {
            Some(part) => hextet(part)?,
            None => embedded_groups.next()?,
        };
        value = value << 16 | u128::from(group);
        Some(())
    };
    let first = usize::from(skip.is_some() && is_empty(&parts[0]));
    for part in &parts[first..first + high] {
        push(part)?;
    }
    for _ in 0..skipped {
        push(&Some(b"0"))?;
    }
    for part in &parts[parts.len() - low - usize::from(skip.is_some() && is_empty(&parts[parts.len() - 1]))..][..low] {
        push(part)?;
    }
    Some(value)
}

fn hextet(part: &[u8]) -> Option<u16> {
    if part.is_empty() || part.len() > 4 || !part.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    Some(part.iter().fold(0u16, |value, &digit| value << 4 | (char::from(digit).to_digit(16).unwrap_or(0) as u16)))
}

fn mask_v4(address: u32, length: u32) -> u32 {
    if length == 0 { 0 } else { address & (u32::MAX << (32 - length.min(32))) }
}

fn mask_v6(address: u128, length: u32) -> u128 {
    if length == 0 { 0 } else { address & (u128::MAX << (128 - length.min(128))) }
}

/// Appends `str(ipaddress.ip_network(f"{text}/{length}", strict=False))` to `out` (the address of the
/// version the text parses as, with the length for that version); `None` where Python raises.
pub fn push_network(out: &mut Vec<u8>, text: &[u8], v4_length: u32, v6_length: u32) -> Option<()> {
    let mut rendered = String::new();
    match parse(text)? {
        Ip::V4(address) => {
            let network = mask_v4(address, v4_length);
            let [a, b, c, d] = network.to_be_bytes();
            write!(rendered, "{a}.{b}.{c}.{d}/{v4_length}").ok()?;
        }
        Ip::V6(address) => {
            let network = mask_v6(address, v6_length);
            let groups: [u16; 8] = std::array::from_fn(|index| (network >> (112 - 16 * index)) as u16);
            write!(rendered, "{}/{v6_length}", crate::addr::format_ipv6(&groups)).ok()?;
        }
    }
    out.extend_from_slice(rendered.as_bytes());
    Some(())
}

/// `NetworkSet.contains(text)` for an address: whether it lies in one of `networks` of its version
/// (text that is no address is in none, as `ValueError` is `False` there).
pub fn contains(networks: &[Net], text: &[u8]) -> bool {
    let Some(ip) = parse(text) else {
        return false;
    };
    networks.iter().any(|net| match (ip, net.address) {
        (Ip::V4(address), Ip::V4(network)) => mask_v4(address, net.length) == mask_v4(network, net.length),
        (Ip::V6(address), Ip::V6(network)) => mask_v6(address, net.length) == mask_v6(network, net.length),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str, v4: u32, v6: u32) -> Option<String> {
        let mut out = Vec::new();
        push_network(&mut out, text.as_bytes(), v4, v6).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn networks_render_as_ipaddress_does() {
        assert_eq!(network("203.0.113.77", 24, 64).as_deref(), Some("203.0.113.0/24"));
        assert_eq!(network("203.0.113.77", 32, 64).as_deref(), Some("203.0.113.77/32"));
        assert_eq!(network("2001:db8:1:2:3::4", 24, 64).as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(network("2001:db8:1:2:3::4", 24, 48).as_deref(), Some("2001:db8:1::/48"));
        assert_eq!(network("::1", 24, 128).as_deref(), Some("::1/128"));
        assert_eq!(network("::ffff:1.2.3.4", 24, 128).as_deref(), Some("::ffff:102:304/128"));
        assert_eq!(network("fe80::1%eth0", 24, 64).as_deref(), Some("fe80::/64"));
        assert_eq!(network("1:0:0:1:0:0:0:1", 24, 128).as_deref(), Some("1:0:0:1::1/128"));
        for bad in ["01.2.3.4", "1.2.3", "1::2::3", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "host", "", "fe80::1%"] {
            assert_eq!(network(bad, 24, 64), None, "{bad}");
        }
    }

    #[test]
    fn membership_by_version() {
        let nets = [Net { address: Ip::V4(0x0a00_0000), length: 8 }, Net { address: Ip::V6(0xfc << 120), length: 7 }];
        assert!(contains(&nets, b"10.1.2.3"));
        assert!(contains(&nets, b"fd00::1"));
        assert!(!contains(&nets, b"11.0.0.1"));
        assert!(!contains(&nets, b"::ffff:10.0.0.1"));
        assert!(!contains(&nets, b"not an address"));
    }
}
