//! Two texts Python writes for a shipped line, reproduced exactly: `repr(float)` (inside the record id)
//! and `records.iso_time(epoch)` (`@timestamp`).

/// `repr(value)` (Python's `str` of a float): the shortest digits that read back as `value` (Rust's `{:e}`
/// gives the same shortest round-trip digits), laid out as Python lays them out: positional notation
/// when the decimal exponent is in -4..16 (with `.0` for whole numbers), else `d.ddde+XX`.
pub fn push_float_repr(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(if value.is_nan() { b"nan" } else if value > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if negative {
        out.push(b'-');
    }
    if (-4..16).contains(&exponent) {
        if exponent < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exponent - 1) as usize));
            out.extend_from_slice(&digits);
        } else {
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                out.extend_from_slice(&digits);
                out.extend(std::iter::repeat_n(b'0', whole - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..whole]);
                out.push(b'.');
                out.extend_from_slice(&digits[whole..]);
            }
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(magnitude.to_string().as_bytes());
    }
}

/// Seconds of the first and after the last second `iso_time` is written for here: years 1000 to 9999,
/// where `strftime("%Y")` has four digits. Other epochs go to Python (which fails past year 9999).
const FIRST_SECOND: i64 = -30_610_224_000; // 1000-01-01T00:00:00Z
const END_SECOND: i64 = 253_402_300_800; // 10000-01-01T00:00:00Z

/// `records.iso_time(epoch)` (`YYYY-MM-DDTHH:MM:SS.mmmZ`, microseconds rounded half to even and then cut
/// to milliseconds, as `datetime` does), or `None` outside years 1000..=9999.
pub fn push_iso_time(out: &mut Vec<u8>, epoch: f64) -> Option<()> {
    // math.modf: the fraction is exact (x - trunc(x) always is); round() on a float is half to even.
    let whole = epoch.trunc();
    let mut micros = ((epoch - whole) * 1e6).round_ties_even() as i64;
    let mut second = whole;
    if micros >= 1_000_000 {
        second += 1.0;
        micros -= 1_000_000;
    } else if micros < 0 {
        second -= 1.0;
        micros += 1_000_000;
    }
    if !(FIRST_SECOND as f64..END_SECOND as f64).contains(&second) {
        return None;
    }
    let second = second as i64;
    let (days, of_day) = (second.div_euclid(86_400), second.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut text[0..4], year as u64);
    put_digits(&mut text[5..7], u64::from(month));
    put_digits(&mut text[8..10], u64::from(day));
    put_digits(&mut text[11..13], (of_day / 3600) as u64);
    put_digits(&mut text[14..16], (of_day / 60 % 60) as u64);
    put_digits(&mut text[17..19], (of_day % 60) as u64);
    put_digits(&mut text[20..23], (micros / 1000) as u64);
    out.push(b'"');
    out.extend_from_slice(&text);
    out.push(b'"');
    Some(())
}

fn put_digits(slot: &mut [u8], mut value: u64) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Year, month, day of a day number (days since 1970-01-01), proleptic Gregorian: Howard Hinnant's
/// `civil_from_days` (http://howardhinnant.github.io/date_algorithms.html).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::{push_float_repr, push_iso_time};

    fn repr(value: f64) -> String {
        let mut out = Vec::new();
        push_float_repr(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    fn iso(epoch: f64) -> Option<String> {
        let mut out = Vec::new();
        push_iso_time(&mut out, epoch).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn float_repr_is_pythons() {
        // Each pair checked with python3: repr(float(text)).
        let cases = [
            (0.0, "0.0"), (-0.0, "-0.0"), (1.0, "1.0"), (1741083302.123456, "1741083302.123456"),
            (1741083302.0, "1741083302.0"), (0.1, "0.1"), (1e-4, "0.0001"), (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"), (1e15, "1000000000000000.0"), (1e16, "1e+16"), (1.2345e17, "1.2345e+17"),
            (123456789012345.67, "123456789012345.67"), (-2.5, "-2.5"), (1e100, "1e+100"), (5e-324, "5e-324"),
        ];
        for (value, text) in cases {
            assert_eq!(repr(value), text);
        }
    }

    #[test]
    fn iso_time_is_the_references() {
        // Each pair checked with python3: records.iso_time(value).
        let cases = [
            (0.0, "1970-01-01T00:00:00.000Z"), (1741083302.123456, "2025-03-04T10:15:02.123Z"),
            (1741083302.9999996, "2025-03-04T10:15:03.000Z"), (-0.5, "1969-12-31T23:59:59.500Z"),
            (951782400.0, "2000-02-29T00:00:00.000Z"), (253402300799.0, "9999-12-31T23:59:59.000Z"),
            (-30610224000.0, "1000-01-01T00:00:00.000Z"), (1.0005, "1970-01-01T00:00:01.000Z"),
        ];
        for (value, text) in cases {
            assert_eq!(iso(value).as_deref(), Some(format!("\"{text}\"").as_str()), "{value}");
        }
        assert_eq!(iso(253402300800.0), None);
        assert_eq!(iso(-30610224001.0), None);
    }
}
