//! Whether a client field is an IP address already written the way Python's `canonical_ip` returns it.
//!
//! The reference (`bastion_guard.parsing.addresses.canonical_ip`) parses with `ipaddress` and returns
//! `str(address)` (IPv4-mapped IPv6 as its IPv4 form). Rather than re-implement every spelling it
//! accepts, the native parser accepts an address only when the text is *already* that canonical form;
//! anything else (names, `::ffff:a.b.c.d`, brackets, zone ids, uncompressed IPv6) goes to Python.

/// True when `text` is an IPv4 or IPv6 literal equal to its own canonical form.
pub fn is_canonical(text: &[u8]) -> bool {
    if text.contains(&b':') {
        match parse_ipv6(text) {
            Some(groups) => !is_ipv4_mapped(&groups) && format_ipv6(&groups).as_bytes() == text,
            None => false,
        }
    } else {
        is_canonical_ipv4(text)
    }
}

/// Dotted quad with no leading zeros (`ipaddress` rejects them) and each part at most 255.
fn is_canonical_ipv4(text: &[u8]) -> bool {
    let mut parts = 0;
    for part in text.split(|&byte| byte == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        if part.len() > 1 && part[0] == b'0' {
            return false;
        }
        let value = part.iter().fold(0u32, |value, &digit| value * 10 + u32::from(digit - b'0'));
        if value > 255 {
            return false;
        }
    }
    parts == 4
}

/// Hex groups and at most one `::`; embedded IPv4, zone ids and brackets are refused (not canonical).
fn parse_ipv6(text: &[u8]) -> Option<[u16; 8]> {
    let (head, tail) = match super::text::find(text, b"::") {
        Some(index) => (&text[..index], Some(&text[index + 2..])),
        None => (text, None),
    };
    let parse_groups = |part: &[u8]| -> Option<Vec<u16>> {
        if part.is_empty() {
            return Some(Vec::new());
        }
        part.split(|&byte| byte == b':')
            .map(|group| {
                if group.is_empty() || group.len() > 4 || !group.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                u16::from_str_radix(std::str::from_utf8(group).ok()?, 16).ok()
            })
            .collect()
    };
    let first = parse_groups(head)?;
    let mut groups = [0u16; 8];
    match tail {
        None => {
            if first.len() != 8 {
                return None;
            }
            groups.copy_from_slice(&first);
        }
        Some(tail) => {
            if super::text::find(tail, b"::").is_some() {
                return None;
            }
            let last = parse_groups(tail)?;
            if first.len() + last.len() > 7 {
                return None;
            }
            groups[..first.len()].copy_from_slice(&first);
            groups[8 - last.len()..].copy_from_slice(&last);
        }
    }
    Some(groups)
}

fn is_ipv4_mapped(groups: &[u16; 8]) -> bool {
    groups[..5].iter().all(|&group| group == 0) && groups[5] == 0xffff
}

/// `ipaddress.IPv6Address.__str__`: lower-case hex without leading zeros, the longest run (first on a
/// tie) of two or more zero groups written as `::`.
pub fn format_ipv6(groups: &[u16; 8]) -> String {
    let (mut best_start, mut best_len) = (usize::MAX, 0);
    let mut index = 0;
    while index < 8 {
        if groups[index] == 0 {
            let start = index;
            while index < 8 && groups[index] == 0 {
                index += 1;
            }
            if index - start > best_len {
                best_start = start;
                best_len = index - start;
            }
        } else {
            index += 1;
        }
    }
    let hex = |slice: &[u16]| slice.iter().map(|group| format!("{group:x}")).collect::<Vec<_>>().join(":");
    if best_len > 1 {
        format!("{}::{}", hex(&groups[..best_start]), hex(&groups[best_start + best_len..]))
    } else {
        hex(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::is_canonical;

    #[test]
    fn canonical_forms() {
        for good in ["1.2.3.4", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "::", "2001:db8:0:1:1:1:1:1"] {
            assert!(is_canonical(good.as_bytes()), "{good}");
        }
        for bad in ["01.2.3.4", "256.1.1.1", "1.2.3", "2001:DB8::1", "2001:db8:0:0:1::1", "::ffff:1.2.3.4",
                    "::ffff:102:304", "fe80::1%eth0", "[::1]", "host.example", "2001:0db8::1", "1::2::3"] {
            assert!(!is_canonical(bad.as_bytes()), "{bad}");
        }
    }
}
