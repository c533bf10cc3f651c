//! The JSON the ECS path needs: reading the values of a spooled batch row (strict RFC 8259, as
//! `orjson.loads` reads them) and writing strings and integers exactly as `orjson.dumps` writes them.
//!
//! Reading works on `&str` (the row is checked to be UTF-8 once), so every string without escapes is
//! borrowed from the row; only strings with escapes are decoded into a new `String`.

use std::borrow::Cow;

/// One scalar of a row; arrays and objects are read by the caller, or skipped.
#[derive(Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// An integer literal (no fraction, no exponent) that fits an i64; Python reads it as an int.
    Int(i64),
    /// Any other number; Python reads it as a float.
    Float(f64),
    Str(Cow<'a, str>),
}

/// Why a row cannot be read here; the caller hands the row to the Python reference instead.
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable;

pub type Read<T> = Result<T, Unreadable>;

/// Whether a byte needs attention in a JSON string: the closing quote, an escape, a control character.
#[inline(always)]
fn special(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The first special byte of `bytes` at or after `from` (`bytes.len()` if none), eight bytes at a time:
/// most of a log line needs no escaping, and this is most of the time spent on strings.
#[inline]
pub fn find_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut at = from;
    while at + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        let word = u64::from_le_bytes(word);
        // "some byte < 0x20" is exact with this test for thresholds up to 0x80; quote and backslash by XOR.
        let below = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        if below | has_zero(word ^ (ONES * u64::from(b'"'))) | has_zero(word ^ (ONES * u64::from(b'\\'))) != 0 {
            break;
        }
        at += 8;
    }
    at + bytes[at..].iter().position(|&byte| special(byte)).unwrap_or(bytes.len() - at)
}

/// A cursor over JSON text.
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Reader<'a> {
        Reader { text, at: 0 }
    }

    pub fn position(&self) -> usize {
        self.at
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        let bytes = self.bytes();
        while self.at < bytes.len() && matches!(bytes[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// The next byte after white space, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes().get(self.at).copied()
    }

    /// Consume `byte` (after white space), or fail.
    pub fn expect(&mut self, byte: u8) -> Read<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Unreadable)
        }
    }

    /// Whether only white space is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// After an element of an array: `true` if another follows (a `,` was consumed), `false` at the `]`
    /// (consumed too).
    pub fn next_element(&mut self) -> Read<bool> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(b']') => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(Unreadable),
        }
    }

    /// Consume `[`; `true` if the array has elements, `false` if it was `[]` (then fully consumed).
    pub fn open_array(&mut self) -> Read<bool> {
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// One scalar value (an array or object is `Unreadable`: rows hold none where scalars belong).
    pub fn scalar(&mut self) -> Read<Value<'a>> {
        match self.peek().ok_or(Unreadable)? {
            b'"' => Ok(Value::Str(self.string()?)),
            b'n' => self.literal("null", Value::Null),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Unreadable),
        }
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Read<Value<'a>> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(Unreadable)
        }
    }

    fn number(&mut self) -> Read<Value<'a>> {
        let bytes = self.bytes();
        let start = self.at;
        let mut at = start;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let digits = |at: usize| bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let whole = digits(at);
        if whole == 0 || (whole > 1 && bytes[at] == b'0') {
            return Err(Unreadable); // no digits, or a leading zero: not JSON
        }
        at += whole;
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            let fraction = digits(at + 1);
            if fraction == 0 {
                return Err(Unreadable);
            }
            at += 1 + fraction;
            integer = false;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(bytes.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            let exponent = digits(at);
            if exponent == 0 {
                return Err(Unreadable);
            }
            at += exponent;
            integer = false;
        }
        self.at = at;
        let text = &self.text[start..at];
        if integer {
            // Beyond i64 Python still has an int; this path leaves such rows to Python.
            return text.parse::<i64>().map(Value::Int).map_err(|_| Unreadable);
        }
        // Rust's parse is correctly rounded, as orjson's is; orjson refuses infinities.
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Value::Float(value)),
            _ => Err(Unreadable),
        }
    }

    /// A string (the reader is at its `"`), borrowed when it has no escapes.
    pub fn string(&mut self) -> Read<Cow<'a, str>> {
        self.expect(b'"')?;
        let bytes = self.bytes();
        let start = self.at;
        let mut at = find_special(bytes, start);
        match bytes.get(at) {
            Some(b'"') => {
                self.at = at + 1;
                return Ok(Cow::Borrowed(&self.text[start..at]));
            }
            Some(b'\\') => {}
            _ => return Err(Unreadable), // a raw control character (not JSON), or no closing quote
        }
        let mut decoded = String::with_capacity(at - start + 16);
        decoded.push_str(&self.text[start..at]);
        loop {
            let run = find_special(bytes, at);
            decoded.push_str(&self.text[at..run]);
            at = run;
            match *bytes.get(at).ok_or(Unreadable)? {
                b'"' => {
                    self.at = at + 1;
                    return Ok(Cow::Owned(decoded));
                }
                b'\\' => {
                    let escape = *bytes.get(at + 1).ok_or(Unreadable)?;
                    at += 2;
                    let simple = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let (character, used) = unicode_escape(&bytes[at..])?;
                            at += used;
                            character
                        }
                        _ => return Err(Unreadable),
                    };
                    decoded.push(simple);
                }
                _ => return Err(Unreadable),
            }
        }
    }
}

fn hex4(bytes: &[u8]) -> Read<u32> {
    let digits = bytes.get(..4).ok_or(Unreadable)?;
    let mut value = 0;
    for &digit in digits {
        value = value * 16 + char::from(digit).to_digit(16).ok_or(Unreadable)?;
    }
    Ok(value)
}

/// The character of `XXXX` (after `\u`), with a following `\uXXXX` low surrogate if it is a high one;
/// lone surrogates are refused, as orjson refuses them. Returns the character and the bytes used.
fn unicode_escape(bytes: &[u8]) -> Read<(char, usize)> {
    let first = hex4(bytes)?;
    if (0xd800..0xdc00).contains(&first) {
        if bytes.get(4..6) != Some(b"\\u") {
            return Err(Unreadable);
        }
        let second = hex4(&bytes[6..])?;
        if !(0xdc00..0xe000).contains(&second) {
            return Err(Unreadable);
        }
        let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
        return Ok((char::from_u32(code).ok_or(Unreadable)?, 10));
    }
    Ok((char::from_u32(first).ok_or(Unreadable)?, 4))
}

/// `orjson.dumps(text)`: `"` and `\` escaped, control characters as `\b \t \n \f \r` or `\u00xx`,
/// everything else (U+2028, non-BMP, DEL) as its UTF-8.
pub fn push_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    loop {
        let at = find_special(bytes, start);
        out.extend_from_slice(&bytes[start..at]);
        let Some(&byte) = bytes.get(at) else {
            break;
        };
        start = at + 1;
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]),
        }
    }
    out.push(b'"');
}

/// `str(number)` / `orjson.dumps(number)` of an integer: its decimal digits.
pub fn push_int(out: &mut Vec<u8>, number: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if number < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::{push_int, push_string, Reader, Unreadable, Value};

    fn scalar(text: &str) -> Result<Value<'_>, Unreadable> {
        let mut reader = Reader::new(text);
        let value = reader.scalar()?;
        if reader.at_end() { Ok(value) } else { Err(Unreadable) }
    }

    #[test]
    fn reads_numbers_as_python_types() {
        assert_eq!(scalar("0"), Ok(Value::Int(0)));
        assert_eq!(scalar("-0"), Ok(Value::Int(0)));
        assert_eq!(scalar("-9223372036854775808"), Ok(Value::Int(i64::MIN)));
        assert_eq!(scalar("9223372036854775808"), Err(Unreadable));
        assert_eq!(scalar("1.5"), Ok(Value::Float(1.5)));
        assert_eq!(scalar("1e+16"), Ok(Value::Float(1e16)));
        assert_eq!(scalar("1E2"), Ok(Value::Float(100.0)));
        for bad in ["01", "1.", ".5", "-", "1e", "+1", "1e400", "NaN", "Infinity", "0x1"] {
            assert_eq!(scalar(bad), Err(Unreadable), "{bad}");
        }
    }

    #[test]
    fn reads_strings_with_every_escape() {
        assert_eq!(scalar(r#""plain é""#), Ok(Value::Str("plain é".into())));
        assert_eq!(scalar(r#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#), Ok(Value::Str("\"\\/\u{8}\u{c}\n\r\té😀".into())));
        for bad in [r#""\ud800""#, r#""\udc00""#, r#""\ud800\u0041""#, r#""\x41""#, "\"a\u{1}\"", r#""open"#, r#""\u12""#] {
            assert_eq!(scalar(bad), Err(Unreadable), "{bad}");
        }
    }

    #[test]
    fn writes_strings_as_orjson_does() {
        let mut out = Vec::new();
        push_string(&mut out, "a\"b\\c/\u{0}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}\u{2028}😀");
        assert_eq!(out, "\"a\\\"b\\\\c/\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\u{2028}😀\"".as_bytes());
    }

    #[test]
    fn finds_special_bytes_at_every_position() {
        use super::find_special;
        for length in 0..40 {
            for position in 0..length {
                for special in [b'"', b'\\', 0u8, 0x1f] {
                    let mut bytes = vec![b'a'; length];
                    bytes[position] = special;
                    bytes.iter_mut().skip(position + 1).for_each(|byte| *byte = 0xff); // high bytes are not special
                    assert_eq!(find_special(&bytes, 0), position);
                    assert_eq!(find_special(&bytes, position + 1), length);
                }
            }
            let plain: Vec<u8> = (0..length).map(|n| [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xe2][n % 8]).collect();
            assert_eq!(find_special(&plain, 0), length);
        }
    }

    #[test]
    fn writes_integers() {
        for number in [0, 7, -7, 10, 4242, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_int(&mut out, number);
            assert_eq!(String::from_utf8(out).unwrap(), number.to_string());
        }
    }
}
