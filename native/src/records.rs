//! The packed result of a chunk: one record of `FIELDS` i64s per line.
//!
//! | index | field |
//! |---|---|
//! | 0, 1 | line start and end (byte offsets into the chunk, end excluded, no newline) |
//! | 2 | code: a kind index (`kinds::NAMES`), or `OTHER_PROGRAM`, `NOISE`, `PYTHON` |
//! | 3 | outcome: 0 failure, 1 success, 2 info |
//! | 4 | epoch, the bits of an f64 |
//! | 5 | utc_offset (seconds) |
//! | 6, 7 / 8, 9 | host / program |
//! | 10 | pid, -1 for none |
//! | 11, 12 | ip |
//! | 13 | port, -1 for none |
//! | 14, 15 / 16, 17 / 18, 19 / 20, 21 | user / method / key_type / fingerprint |
//! | 22 | user_valid: -1 none, 0 false, 1 true |
//! | 23 | attributed_by: 0 none, 1 line, 2 connection |
//! | 24, 25 | detail |
//! | 26 | index of the line among the lines of this call (0-based) |
//!
//! With `Options::all_lines` every line gets a record. Otherwise only the lines Python has work for do:
//! events of a kind in `Options::counted`, lines Python must parse, and `SWEEP` markers (field 4: the
//! epoch) where an event of another kind moves the rules engine's sweep clock (`Engine.advance`); every
//! other line is only counted, in `counts[code * 3 + outcome]` (events of every kind are counted there).
//! A text field is a pair `(start, end)`: `(-1, -1)` for none, offsets into the chunk, or offsets into
//! the arena plus `ARENA` (text that is not in the chunk: an address from the connection context, a
//! constant, a composed detail). Only fields 0-2 are meaningful in a record that is not an event.

use std::borrow::Cow;

use crate::context::Context;
use crate::engine::{Engine, EngineEvent};
use crate::line::{self, Verdict};

pub const FIELDS: usize = 27;
pub const OTHER_PROGRAM: i64 = 100;
pub const NOISE: i64 = 101;
pub const PYTHON: i64 = 102;
pub const SWEEP: i64 = 103;
/// With a counting engine: a window reached its count (`engine::Threshold`); always the last record.
pub const THRESHOLD: i64 = 104;
/// Length of the `counts` array: `code * 3 + outcome` for every code up to `SWEEP`.
pub const COUNT_SLOTS: usize = (SWEEP as usize + 1) * 3;
pub const ARENA: i64 = 1 << 48;
/// Arena bytes one event may need at most: an address (at most 39 bytes), "pam", a composed detail.
const ARENA_PER_LINE: usize = 256;

pub struct Done {
    pub next: usize,
    pub records: usize,
    pub arena: usize,
    pub lines: usize,
}

/// What the caller wants records for, and the engine's sweep clock to mirror.
pub struct Options<'a> {
    /// Per kind code: nonzero when the rules engine counts events of that kind.
    pub counted: &'a [u8],
    pub all_lines: bool,
    /// `Engine.next_sweep` now, and the interval `Engine.sweep` adds to the epoch it runs at.
    pub next_sweep: f64,
    pub sweep_interval: f64,
}

struct Writer<'a> {
    chunk: &'a [u8],
    arena: &'a mut [u8],
    used: usize,
}

impl Writer<'_> {
    /// A text field as its pair: in place if it lies in the chunk, else copied into the arena.
    fn text(&mut self, value: Option<&[u8]>) -> (i64, i64) {
        let Some(value) = value else {
            return (-1, -1);
        };
        let base = self.chunk.as_ptr() as usize;
        let at = value.as_ptr() as usize;
        if !value.is_empty() && at >= base && at + value.len() <= base + self.chunk.len() {
            let start = (at - base) as i64;
            return (start, start + value.len() as i64);
        }
        let start = self.used;
        self.arena[start..start + value.len()].copy_from_slice(value);
        self.used += value.len();
        (ARENA + start as i64, ARENA + self.used as i64)
    }
}

/// A record that is not an event: only the line, its code and its index are meaningful.
fn marker(record: &mut [i64], line_start: usize, end: usize, code: i64, index: i64) {
    record.fill(-1);
    (record[0], record[1], record[2]) = (line_start as i64, end as i64, code);
    record[26] = index;
}

fn cow<'a>(value: &'a Option<Cow<'_, [u8]>>) -> Option<&'a [u8]> {
    value.as_deref()
}

/// The native counting engine a chunk's events go to (instead of records for Python to count).
pub struct Counting<'a> {
    pub engine: &'a mut Engine,
    /// The engine's index of the chunk's source, and the line number of the line before `start`.
    pub source: i64,
    pub base: i64,
    /// Python has rules of its own to sweep: write a `SWEEP` record (field 4: the epoch) when the engine
    /// sweeps.
    pub python_sweeps: bool,
}

pub fn parse_chunk(
    context: &mut Context, chunk: &[u8], start: usize, records: &mut [i64], arena: &mut [u8], options: &Options<'_>,
    counts: &mut [i64],
) -> Option<Done> {
    parse_chunk_counting(context, chunk, start, records, arena, options, counts, None)
}

/// `parse_chunk`, with every event fed to `counting` when there is one: then the records are the lines
/// Python must parse, `SWEEP` markers for Python's own rules, and `THRESHOLD` (stops the call, as
/// `PYTHON` does, so that Python decides before the next line counts). `None` also when the engine
/// cannot make a key (an address Python's `ipaddress` would refuse: never from this parser).
#[allow(clippy::too_many_arguments)]
pub fn parse_chunk_counting(
    context: &mut Context, chunk: &[u8], start: usize, records: &mut [i64], arena: &mut [u8], options: &Options<'_>,
    counts: &mut [i64], mut counting: Option<Counting<'_>>,
) -> Option<Done> {
    if start > chunk.len() + 1 || counts.len() < COUNT_SLOTS {
        return None;
    }
    // A counted line may write two records (a sweep marker and a threshold).
    let per_line = if counting.is_some() { 2 } else { 1 };
    let mut writer = Writer { chunk, arena, used: 0 };
    let mut next_sweep = options.next_sweep;
    let mut position = start;
    let mut count = 0;
    let mut lines = 0;
    // A chunk of N newlines holds N + 1 lines (the last possibly empty): done when past its end.
    while position <= chunk.len() {
        if (count + per_line) * FIELDS > records.len() || writer.used + ARENA_PER_LINE > writer.arena.len() {
            break;
        }
        let (end, suspect) = crate::text::line_end(chunk, position);
        let verdict = if suspect { Verdict::Python } else { line::process(context, &chunk[position..end]) };
        let index = lines as i64;
        lines += 1;
        let line_start = position;
        position = end + 1;
        let code = match &verdict {
            Verdict::OtherProgram => OTHER_PROGRAM,
            Verdict::Noise => NOISE,
            Verdict::Python => PYTHON,
            Verdict::Event(event) => event.found.kind.code(),
        };
        let wanted = match &verdict {
            Verdict::Python => true,
            Verdict::Event(event) => {
                counts[(code * 3) as usize + usize::from(event.found.outcome)] += 1;
                if let Some(counting) = counting.as_mut() {
                    let fed = EngineEvent {
                        epoch: event.envelope.epoch, kind: code as u32, ip: cow(&event.ip), user: event.found.user,
                        pid: event.envelope.pid.map(|pid| pid as f64), repeat: 1, source: counting.source,
                        position: counting.base + index + 1,
                    };
                    let step = counting.engine.feed(&fed).ok()?;
                    if step.swept && counting.python_sweeps {
                        marker(&mut records[count * FIELDS..(count + 1) * FIELDS], line_start, end, SWEEP, index);
                        records[count * FIELDS + 4] = event.envelope.epoch.to_bits() as i64;
                        count += 1;
                    }
                    if step.threshold {
                        marker(&mut records[count * FIELDS..(count + 1) * FIELDS], line_start, end, THRESHOLD, index);
                        count += 1;
                        break;
                    }
                    continue;
                }
                let counted = options.counted.get(code as usize).is_some_and(|&flag| flag != 0);
                let epoch = event.envelope.epoch;
                let sweeps = epoch >= next_sweep; // Engine.feed / Engine.advance: sweep when due
                if sweeps {
                    next_sweep = epoch + options.sweep_interval;
                }
                if !counted && !options.all_lines && sweeps {
                    let record = &mut records[count * FIELDS..(count + 1) * FIELDS];
                    marker(record, line_start, end, SWEEP, index);
                    record[4] = epoch.to_bits() as i64;
                    count += 1;
                }
                counted || options.all_lines
            }
            _ => {
                counts[(code * 3) as usize] += 1;
                options.all_lines
            }
        };
        if !wanted {
            continue;
        }
        let record = &mut records[count * FIELDS..(count + 1) * FIELDS];
        count += 1;
        record.fill(-1);
        (record[0], record[1], record[2]) = (line_start as i64, end as i64, code);
        record[26] = index;
        match verdict {
            Verdict::Python => break,
            Verdict::Event(event) => {
                let found = &event.found;
                record[3] = i64::from(found.outcome);
                record[4] = event.envelope.epoch.to_bits() as i64;
                record[5] = event.envelope.utc_offset;
                (record[6], record[7]) = writer.text(Some(event.envelope.host));
                (record[8], record[9]) = writer.text(Some(event.envelope.program));
                record[10] = event.envelope.pid.unwrap_or(-1);
                (record[11], record[12]) = writer.text(cow(&event.ip));
                record[13] = event.port.unwrap_or(-1);
                (record[14], record[15]) = writer.text(found.user);
                (record[16], record[17]) = writer.text(found.method);
                (record[18], record[19]) = writer.text(found.key_type);
                (record[20], record[21]) = writer.text(found.fingerprint);
                record[22] = found.user_valid.map_or(-1, i64::from);
                record[23] = event.attributed_by;
                (record[24], record[25]) = writer.text(cow(&found.detail));
            }
            _ => {}
        }
    }
    Some(Done { next: position, records: count, arena: writer.used, lines })
}
