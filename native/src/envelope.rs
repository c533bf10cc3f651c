//! The RFC 3339 syslog envelope, the one form the native path reads:
//! `YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|+HH:MM|-HH:MM) HOST PROGRAM[PID]: MESSAGE`.
//!
//! This is a strict subset of what `bastion_guard.parsing.envelope._RFC3339` accepts, chosen so that the
//! regex can split such a line in exactly one way (see `read`). Every other line is left to Python.

use crate::text::{digits, is_space, token};

pub struct Envelope<'a> {
    pub epoch: f64,
    pub utc_offset: i64,
    pub host: &'a [u8],
    pub program: &'a [u8],
    pub pid: Option<i64>,
    pub message: &'a [u8],
}

fn two(text: &[u8], at: usize) -> Option<i64> {
    let pair = text.get(at..at + 2)?;
    if pair.iter().all(u8::is_ascii_digit) {
        Some(i64::from(pair[0] - b'0') * 10 + i64::from(pair[1] - b'0'))
    } else {
        None
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The whole-second epoch of `YYYY-MM-DDTHH:MM:SS`, or `None` where `datetime.fromisoformat` refuses
/// the date (or the reference reads it another way: seconds past 59 go to Python).
fn whole_seconds(stamp: &[u8]) -> Option<i64> {
    let year = two(stamp, 0)? * 100 + two(stamp, 2)?;
    if stamp[4] != b'-' || stamp[7] != b'-' || stamp[10] != b'T' || stamp[13] != b':' || stamp[16] != b':' {
        return None;
    }
    let (month, day) = (two(stamp, 5)?, two(stamp, 8)?);
    let (hour, minute, second) = (two(stamp, 11)?, two(stamp, 14)?, two(stamp, 17)?);
    const DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if year < 1 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let month_days = DAYS[(month - 1) as usize] + i64::from(month == 2 && is_leap(year));
    if day < 1 || day > month_days {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// 10 ** n as doubles (all exact), like Python's FRACTION_SCALE.
const SCALE: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

const PROGRAM_BYTES: &[u8] = b"_.()/-";

fn is_program_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || PROGRAM_BYTES.contains(&byte)
}

/// Split `line`, or `None` if it is not of the strict form above.
///
/// Why the reference regex splits such a line the same way: the stamp groups are fixed-width; the
/// optional host group `(\S+) ` is tried first and `\S+` takes the whole run up to the space; the lazy
/// program `[A-Za-z0-9_.()/-]+?` cannot stop before the `[` (none of its characters is `[` or `:`); the
/// pid is 1-10 digits (or absent, the program then ending at the colon); `: ?` takes the one space
/// before the message.
pub fn read(line: &[u8]) -> Option<Envelope<'_>> {
    if line.len() < 20 {
        return None;
    }
    let whole = whole_seconds(&line[..19])?;
    let mut at = 19;
    let mut fraction = 0.0;
    if line[at] == b'.' {
        let count = digits(&line[at + 1..]);
        if !(1..=9).contains(&count) {
            return None;
        }
        let value = crate::text::number(&line[at + 1..at + 1 + count])?;
        // int(fraction) / 10 ** len(fraction) in Python: both exact as doubles, one correctly rounded division
        fraction = value as f64 / SCALE[count];
        at += 1 + count;
    }
    let utc_offset = match line.get(at)? {
        b'Z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            if line.get(at + 3) != Some(&b':') {
                return None;
            }
            let magnitude = two(line, at + 1)? * 3_600 + two(line, at + 4)? * 60;
            at += 6;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    if line.get(at) != Some(&b' ') {
        return None;
    }
    at += 1;
    let host_length = token(&line[at..]);
    if host_length == 0 || line.get(at + host_length) != Some(&b' ') {
        return None;
    }
    let host = &line[at..at + host_length];
    at += host_length + 1;
    let program_length = crate::text::run(&line[at..], is_program_byte);
    if program_length == 0 {
        return None;
    }
    let program = &line[at..at + program_length];
    at += program_length;
    let pid = match line.get(at) {
        Some(b'[') => {
            at += 1;
            let pid_length = digits(&line[at..]);
            if !(1..=10).contains(&pid_length) || line.get(at + pid_length) != Some(&b']') {
                return None;
            }
            let pid = crate::text::number(&line[at..at + pid_length])?;
            at += pid_length + 1;
            Some(pid)
        }
        _ => None, // "sudo: ..." has no pid; the program is then followed by the colon
    };
    if line.get(at..at + 2) != Some(b": ") {
        return None;
    }
    at += 2;
    // Python: minute epoch (float) - offset, + seconds, + fraction; all integers here are exact doubles
    let epoch = (whole - utc_offset) as f64 + fraction;
    debug_assert!(!host.iter().any(|&byte| is_space(byte)));
    Some(Envelope { epoch, utc_offset, host, program, pid, message: &line[at..] })
}
