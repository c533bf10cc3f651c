//! Byte-level helpers that reproduce the character classes of Python's `re` on ASCII text.
//!
//! The native parser only ever sees ASCII lines (anything else goes to the Python reference parser), so
//! Python's `\s`, `\S`, `\d` and `\w` reduce to the byte sets below. `\s` is what `str.isspace()`
//! accepts: besides the usual five it includes the separators 0x1c-0x1f.

/// Python's `\s` on an ASCII character.
pub fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

/// Python's `\w` on an ASCII character.
pub fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Length of the run at the start of `text` whose bytes satisfy `accept`.
pub fn run(text: &[u8], accept: impl Fn(u8) -> bool) -> usize {
    text.iter().position(|&byte| !accept(byte)).unwrap_or(text.len())
}

/// Length of the run of non-`\s` bytes at the start of `text` (what a greedy `\S+` takes).
pub fn token(text: &[u8]) -> usize {
    run(text, |byte| !is_space(byte))
}

/// Length of the run of ASCII digits at the start of `text`.
pub fn digits(text: &[u8]) -> usize {
    run(text, |byte| byte.is_ascii_digit())
}

/// The value of a run of 1..=18 digits, as Python's `int()` reads it (leading zeros allowed).
/// Longer runs are refused: Python's integers are unbounded, ours are not, so such lines go to Python.
pub fn number(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0i64, |value, &digit| value * 10 + i64::from(digit - b'0')))
}

/// Index of the first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Index of the last occurrence of `needle` in `haystack`.
pub fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).rposition(|window| window == needle)
}

/// Number of non-overlapping occurrences of `needle` (what Python's `str.count` returns).
pub fn count(haystack: &[u8], needle: &[u8]) -> usize {
    let mut total = 0;
    let mut rest = haystack;
    while let Some(index) = find(rest, needle) {
        total += 1;
        rest = &rest[index + needle.len()..];
    }
    total
}

/// What the line starting at `start` needs checked before anything else: where it ends (the next `\n`
/// or the end of `chunk`), and whether it holds a `\r` or a non-ASCII byte. One pass, eight bytes at a
/// time (the classic "has a zero byte" bit trick on `u64` words, no `unsafe`).
pub fn line_end(chunk: &[u8], start: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut at = start;
    let mut suspect = false; // a \r or a byte >= 0x80 seen
    while at + 8 <= chunk.len() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&chunk[at..at + 8]);
        let word = u64::from_le_bytes(bytes);
        if has_zero(word ^ (ONES * u64::from(b'\n'))) != 0 {
            break; // the newline is in this word: finished byte by byte below
        }
        suspect |= word & HIGHS != 0 || has_zero(word ^ (ONES * u64::from(b'\r'))) != 0;
        at += 8;
    }
    while at < chunk.len() && chunk[at] != b'\n' {
        suspect |= chunk[at] == b'\r' || chunk[at] >= 0x80;
        at += 1;
    }
    (at, suspect)
}

#[cfg(test)]
mod tests {
    use super::line_end;

    #[test]
    fn finds_line_ends_and_suspect_bytes() {
        let chunk = b"0123456789abcdef\nshort\nwith\rcr in a long line\nend\xff";
        assert_eq!(line_end(chunk, 0), (16, false));
        assert_eq!(line_end(chunk, 17), (22, false));
        assert_eq!(line_end(chunk, 23), (45, true));
        assert_eq!(line_end(chunk, 46), (chunk.len(), true));
        assert_eq!(line_end(chunk, chunk.len()), (chunk.len(), false));
        for start in 0..=chunk.len() {
            let end = chunk[start..].iter().position(|&b| b == b'\n').map_or(chunk.len(), |at| start + at);
            let suspect = chunk[start..end].iter().any(|&b| b == b'\r' || b >= 0x80);
            assert_eq!(line_end(chunk, start), (end, suspect), "start {start}");
        }
    }
}
