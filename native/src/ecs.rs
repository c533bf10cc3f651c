//! Bulk NDJSON for the parsed lines of one spooled batch row, the bytes of Python's
//! `bastion_guard.shipping.ecs_ndjson.event_lines` (itself checked against the reference,
//! `ecs.to_document` + orjson), without building a Python object per line.
//!
//! The row is `[1, bastion, [[epoch, utc_offset, host, ..., raw], ...]]` (`shipping/event_batches.py`).
//! `index` checks a whole row the way `decode_events` reads it and finds where each event starts, and
//! `lines` writes the NDJSON of a run of those events. Every static piece of text comes from Python (the
//! `Table` of kind shapes and outcomes, the `Frame` of one namespace and bastion), so the documents'
//! layout has one definition, in Python; this module only fills in the variable fields, in the
//! reference's order and with its conditions.
//!
//! A row this module cannot show it reads exactly as Python does (another format version, a value of
//! an unexpected type, an integer beyond i64, an unknown kind, a year outside 1000..=9999) is
//! `Unreadable`: the caller takes the Python path for it, which is the reference for every row.

use std::borrow::Cow;

use crate::blake2b::{push_hex, Blake2b};
use crate::json::{push_int, push_string, Read, Reader, Unreadable, Value};
use crate::pyfmt::{push_float_repr, push_iso_time};

/// The stored form's version (`event_batches.FORMAT`).
const FORMAT: i64 = 1;
const ID_BYTES: usize = 16;

/// The per-kind and per-outcome pieces, from Python: `count \0 (kind \0 shape \0){count}
/// (outcome \0 field)*`, where `shape` is `"kind":"event","category":[...],"type":[...],"action":...`
/// and `field` is what the outcome adds to `event` (empty for "info").
pub struct Table<'a> {
    kinds: Vec<(&'a [u8], &'a [u8])>,
    outcomes: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Table<'a> {
    pub fn parse(blob: &'a [u8]) -> Read<Table<'a>> {
        let mut pieces = blob.split(|&byte| byte == 0);
        let count: usize = std::str::from_utf8(pieces.next().ok_or(Unreadable)?)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(Unreadable)?;
        let mut pairs = Vec::new();
        while let Some(name) = pieces.next() {
            pairs.push((name, pieces.next().ok_or(Unreadable)?));
        }
        if pairs.len() < count {
            return Err(Unreadable);
        }
        let outcomes = pairs.split_off(count);
        Ok(Table { kinds: pairs, outcomes })
    }

    fn find(pairs: &[(&[u8], &[u8])], name: &str) -> Read<usize> {
        pairs.iter().position(|(known, _)| *known == name.as_bytes()).ok_or(Unreadable)
    }
}

/// The pieces of one (namespace, bastion), from Python (`ecs_ndjson._templates`), joined by NULs: the
/// action line up to `_id`, `ecs`/`data_stream` up to `event.id`, `event` from after the id to the shape,
/// `"host":{"name":...` and `,"observer":{...}`.
pub struct Frame<'a> {
    action: &'a [u8],
    stream_head: &'a [u8],
    stream_tail: &'a [u8],
    host: &'a [u8],
    observer: &'a [u8],
}

impl<'a> Frame<'a> {
    pub fn parse(blob: &'a [u8]) -> Read<Frame<'a>> {
        let pieces: Vec<&[u8]> = blob.split(|&byte| byte == 0).collect();
        let [action, stream_head, stream_tail, host, observer] = pieces[..] else {
            return Err(Unreadable);
        };
        Ok(Frame { action, stream_head, stream_tail, host, observer })
    }
}

/// An epoch as Python holds it after `orjson.loads`: an int or a float (their `str` differ).
#[derive(Clone, Copy)]
enum Epoch {
    Int(i64),
    Float(f64),
}

/// The fields of one stored event the document uses (`utc_offset` is checked and not kept).
struct Line<'a> {
    epoch: Epoch,
    host: Option<Cow<'a, str>>,
    program: Option<Cow<'a, str>>,
    pid: Option<i64>,
    kind: usize,
    outcome: usize,
    ip: Option<Cow<'a, str>>,
    port: Option<i64>,
    user: Option<Cow<'a, str>>,
    ssh_texts: [Option<Cow<'a, str>>; 4], // method, key_type, fingerprint, cert_id
    cert_serial: Option<i64>,
    client_host: Option<Cow<'a, str>>,
    user_valid: Option<bool>,
    attributed_by: Option<Cow<'a, str>>,
    detail: Option<Cow<'a, str>>,
    repeat: i64,
    source: Cow<'a, str>,
    position: i64,
    raw: Cow<'a, str>,
}

const SSH_NAMES: [&[u8]; 4] = [b"method", b"key_type", b"fingerprint", b"cert_id"];

fn text<'a>(reader: &mut Reader<'a>) -> Read<Cow<'a, str>> {
    match reader.scalar()? {
        Value::Str(text) => Ok(text),
        _ => Err(Unreadable),
    }
}

fn optional_text<'a>(reader: &mut Reader<'a>) -> Read<Option<Cow<'a, str>>> {
    match reader.scalar()? {
        Value::Str(text) => Ok(Some(text)),
        Value::Null => Ok(None),
        _ => Err(Unreadable),
    }
}

fn int(reader: &mut Reader) -> Read<i64> {
    match reader.scalar()? {
        Value::Int(number) => Ok(number),
        _ => Err(Unreadable),
    }
}

fn optional_int(reader: &mut Reader) -> Read<Option<i64>> {
    match reader.scalar()? {
        Value::Int(number) => Ok(Some(number)),
        Value::Null => Ok(None),
        _ => Err(Unreadable),
    }
}

/// Read `,` between fields (the first field has none).
fn comma(reader: &mut Reader) -> Read<()> {
    reader.expect(b',')
}

fn read_line<'a>(reader: &mut Reader<'a>, table: &Table) -> Read<Line<'a>> {
    reader.expect(b'[')?;
    let epoch = match reader.scalar()? {
        Value::Int(number) if number.unsigned_abs() <= 1 << 53 => Epoch::Int(number),
        Value::Float(number) => Epoch::Float(number),
        _ => return Err(Unreadable),
    };
    comma(reader)?;
    int(reader)?; // utc_offset: shipped times are UTC
    comma(reader)?;
    let host = optional_text(reader)?;
    comma(reader)?;
    let program = optional_text(reader)?;
    comma(reader)?;
    let pid = optional_int(reader)?;
    comma(reader)?;
    let kind = Table::find(&table.kinds, &text(reader)?)?;
    comma(reader)?;
    let outcome = Table::find(&table.outcomes, &text(reader)?)?;
    comma(reader)?;
    let ip = optional_text(reader)?;
    comma(reader)?;
    let port = optional_int(reader)?;
    comma(reader)?;
    let user = optional_text(reader)?;
    let mut ssh_texts: [Option<Cow<str>>; 4] = [None, None, None, None];
    for slot in &mut ssh_texts {
        comma(reader)?;
        *slot = optional_text(reader)?;
    }
    comma(reader)?;
    let cert_serial = optional_int(reader)?;
    comma(reader)?;
    let client_host = optional_text(reader)?;
    comma(reader)?;
    let user_valid = match reader.scalar()? {
        Value::Bool(valid) => Some(valid),
        Value::Null => None,
        _ => return Err(Unreadable),
    };
    comma(reader)?;
    let attributed_by = optional_text(reader)?;
    comma(reader)?;
    let detail = optional_text(reader)?;
    comma(reader)?;
    let repeat = int(reader)?;
    comma(reader)?;
    let source = text(reader)?;
    comma(reader)?;
    let position = int(reader)?;
    comma(reader)?;
    let raw = text(reader)?;
    reader.expect(b']')?; // exactly the 23 fields of `Event`, no defaults left to fill in
    let line = Line {
        epoch, host, program, pid, kind, outcome, ip, port, user, ssh_texts, cert_serial, client_host, user_valid,
        attributed_by, detail, repeat, source, position, raw,
    };
    if !iso_time_fits(line.epoch) {
        return Err(Unreadable);
    }
    Ok(line)
}

fn iso_time_fits(epoch: Epoch) -> bool {
    push_iso_time(&mut Vec::with_capacity(32), epoch_float(epoch)).is_some()
}

fn epoch_float(epoch: Epoch) -> f64 {
    match epoch {
        Epoch::Int(number) => number as f64,
        Epoch::Float(number) => number,
    }
}

/// What `index` finds in a row: its bastion and where each event starts (and where the last one ends).
pub struct RowIndex {
    pub bastion: String,
    /// `starts[i]` is the byte offset of event `i`'s `[`, `starts[count]` the end of the last event.
    pub starts: Vec<usize>,
}

/// Check `row` the way `decode_events` reads it (every event of it) and find its events.
pub fn index(row: &[u8], table: &Table) -> Read<RowIndex> {
    let text = std::str::from_utf8(row).map_err(|_| Unreadable)?;
    let mut reader = Reader::new(text);
    reader.expect(b'[')?;
    if !matches!(reader.scalar()?, Value::Int(FORMAT)) {
        return Err(Unreadable);
    }
    comma(&mut reader)?;
    let bastion = text_value(&mut reader)?;
    comma(&mut reader)?;
    let mut starts = Vec::new();
    if reader.open_array()? {
        loop {
            reader.peek();
            starts.push(reader.position());
            read_line(&mut reader, table)?;
            let end = reader.position();
            if !reader.next_element()? {
                starts.push(end);
                break;
            }
        }
    } else {
        starts.push(reader.position());
    }
    reader.expect(b']')?;
    if !reader.at_end() {
        return Err(Unreadable);
    }
    Ok(RowIndex { bastion, starts })
}

fn text_value(reader: &mut Reader) -> Read<String> {
    Ok(text(reader)?.into_owned())
}

/// The NDJSON of `count` events, `events` being their stored text separated by commas (a slice of a
/// row from one start `index` found to another's, so with the comma before the next event unless the
/// run is the row's last), shipped from `bastion`.
/// The NDJSON replaces what `out` held (the caller reuses one buffer: a fresh megabytes-long one per call
/// cost as much in page faults as the id hashes).
pub fn lines(out: &mut Vec<u8>, events: &[u8], count: usize, bastion: &str, table: &Table, frame: &Frame) -> Read<()> {
    let text = std::str::from_utf8(events).map_err(|_| Unreadable)?;
    let mut reader = Reader::new(text);
    let estimate = events.len() * 3 + count * 1024;
    out.clear();
    if out.capacity() > 4 * estimate {
        out.shrink_to(estimate); // a burst of long lines does not keep its megabytes for good
    }
    out.reserve(estimate);
    let mut id_text = Vec::with_capacity(512);
    for number in 0..count {
        if number > 0 {
            comma(&mut reader)?;
        }
        let line = read_line(&mut reader, table)?;
        write_line(out, &mut id_text, &line, bastion, table, frame)?;
    }
    if reader.peek() == Some(b',') {
        reader.expect(b',')?; // a run that ends where the row's next event starts
    }
    if !reader.at_end() {
        return Err(Unreadable);
    }
    Ok(())
}

/// `records.event_id`: blake2b-128 of `event\0{bastion}\0{source}\0{position}\0{epoch}\0{raw}\0`, as
/// a JSON string of 32 hex digits.
fn push_id(out: &mut Vec<u8>, scratch: &mut Vec<u8>, line: &Line, bastion: &str) {
    scratch.clear();
    scratch.extend_from_slice(b"event\0");
    scratch.extend_from_slice(bastion.as_bytes());
    scratch.push(0);
    scratch.extend_from_slice(line.source.as_bytes());
    scratch.push(0);
    push_int(scratch, line.position);
    scratch.push(0);
    match line.epoch {
        Epoch::Int(number) => push_int(scratch, number),
        Epoch::Float(number) => push_float_repr(scratch, number),
    }
    scratch.push(0);
    let mut state = Blake2b::new(ID_BYTES);
    state.update(scratch);
    state.update(line.raw.as_bytes());
    state.update(b"\0");
    let mut digest = [0u8; ID_BYTES];
    state.finish(&mut digest);
    out.push(b'"');
    push_hex(out, &digest);
    out.push(b'"');
}

/// `ecs._message`: the text after `program[pid]: ` (or `program: `), else the whole line.
fn message<'a>(raw: &'a str, program: Option<&str>, pid: Option<i64>, scratch: &mut Vec<u8>) -> &'a str {
    let Some(program) = program.filter(|program| !program.is_empty()) else {
        return raw;
    };
    scratch.clear();
    scratch.extend_from_slice(program.as_bytes());
    if let Some(pid) = pid {
        scratch.push(b'[');
        push_int(scratch, pid);
        scratch.push(b']');
    }
    scratch.extend_from_slice(b": ");
    // The marker is program text plus ASCII: valid UTF-8, and a match ends on a character boundary.
    let marker = std::str::from_utf8(scratch).unwrap_or("\0never");
    match raw.find(marker) {
        Some(at) => &raw[at + marker.len()..],
        None => raw,
    }
}

fn some_text<'b>(value: &'b Option<Cow<str>>) -> Option<&'b str> {
    value.as_deref()
}

/// One event's two lines, in `ecs_ndjson.event_lines`' order and under its conditions.
fn write_line(out: &mut Vec<u8>, scratch: &mut Vec<u8>, line: &Line, bastion: &str, table: &Table,
              frame: &Frame) -> Read<()> {
    let id_start = out.len();
    out.extend_from_slice(frame.action);
    push_id(out, scratch, line, bastion);
    let id = id_start + frame.action.len()..out.len();
    out.extend_from_slice(b"}}\n{\"@timestamp\":");
    push_iso_time(out, epoch_float(line.epoch)).ok_or(Unreadable)?;
    out.push(b',');
    out.extend_from_slice(frame.stream_head);
    out.extend_from_within(id);
    out.extend_from_slice(frame.stream_tail);
    out.extend_from_slice(table.kinds[line.kind].1);
    out.extend_from_slice(b",\"original\":");
    push_string(out, &line.raw);
    let program = some_text(&line.program).filter(|program| !program.is_empty());
    if let Some(program) = program {
        out.extend_from_slice(b",\"provider\":");
        push_string(out, program);
    }
    out.extend_from_slice(table.outcomes[line.outcome].1);
    out.extend_from_slice(b"},");
    out.extend_from_slice(frame.host);
    if let Some(host) = some_text(&line.host).filter(|host| !host.is_empty()) {
        out.extend_from_slice(b",\"hostname\":");
        push_string(out, host);
    }
    out.push(b'}');
    out.extend_from_slice(frame.observer);
    out.extend_from_slice(b",\"message\":");
    push_string(out, message(&line.raw, program, line.pid, scratch));
    if let Some(program) = program {
        out.extend_from_slice(b",\"process\":{\"name\":");
        push_string(out, program);
        if let Some(pid) = line.pid {
            out.extend_from_slice(b",\"pid\":");
            push_int(out, pid);
        }
        out.push(b'}');
    }
    let file = line.source.strip_prefix("file:");
    if let Some(path) = file {
        out.extend_from_slice(b",\"log\":{\"file\":{\"path\":");
        push_string(out, path);
        out.extend_from_slice(b"},\"offset\":");
        push_int(out, line.position);
        out.push(b'}');
    }
    write_source_and_user(out, line);
    out.extend_from_slice(b",\"bastion\":{\"event\":{\"kind\":");
    out.push(b'"');
    out.extend_from_slice(table.kinds[line.kind].0); // a Kind value: plain ASCII, nothing to escape
    out.push(b'"');
    out.extend_from_slice(b"},\"source\":");
    push_string(out, &line.source);
    write_bastion_tail(out, line, file.is_some());
    out.extend_from_slice(b"}}\n");
    Ok(())
}

/// `source`, `user` and `related` (`ecs_ndjson._source_and_user`).
fn write_source_and_user(out: &mut Vec<u8>, line: &Line) {
    let ip = some_text(&line.ip).filter(|ip| !ip.is_empty());
    if let Some(ip) = ip {
        out.extend_from_slice(b",\"source\":{\"ip\":");
        push_string(out, ip);
        out.extend_from_slice(b",\"address\":");
        push_string(out, ip);
        if let Some(port) = line.port {
            out.extend_from_slice(b",\"port\":");
            push_int(out, port);
        }
        out.push(b'}');
    } else if let Some(name) = some_text(&line.client_host).filter(|name| !name.is_empty()) {
        out.extend_from_slice(b",\"source\":{\"domain\":");
        push_string(out, name);
        out.extend_from_slice(b",\"address\":");
        push_string(out, name);
        out.push(b'}');
    }
    let user = some_text(&line.user);
    if let Some(user) = user {
        out.extend_from_slice(b",\"user\":{\"name\":");
        push_string(out, user);
        out.push(b'}');
    }
    if ip.is_some() || user.is_some() {
        out.extend_from_slice(b",\"related\":{");
        if let Some(ip) = ip {
            out.extend_from_slice(b"\"ip\":[");
            push_string(out, ip);
            out.push(b']');
        }
        if let Some(user) = user {
            out.extend_from_slice(if ip.is_some() { b",\"user\":[" } else { b"\"user\":[" });
            push_string(out, user);
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// `bastion.ssh`, the optional fields and `position` (`ecs_ndjson._bastion_tail`).
fn write_bastion_tail(out: &mut Vec<u8>, line: &Line, from_file: bool) {
    let mut opened = false;
    let mut open = |out: &mut Vec<u8>, name: &[u8]| {
        out.extend_from_slice(if opened { b",\"" } else { b",\"ssh\":{\"" });
        out.extend_from_slice(name);
        out.extend_from_slice(b"\":");
        opened = true;
    };
    for (name, value) in SSH_NAMES.iter().zip(&line.ssh_texts) {
        if let Some(value) = value {
            open(out, name);
            push_string(out, value);
        }
    }
    if let Some(serial) = line.cert_serial {
        open(out, b"cert_serial");
        push_int(out, serial);
    }
    if let Some(valid) = line.user_valid {
        open(out, b"invalid_user");
        out.extend_from_slice(if valid { b"false" } else { b"true" });
    }
    if opened {
        out.push(b'}');
    }
    if let Some(attributed_by) = &line.attributed_by {
        out.extend_from_slice(b",\"attributed_by\":");
        push_string(out, attributed_by);
    }
    if let Some(detail) = &line.detail {
        out.extend_from_slice(b",\"detail\":");
        push_string(out, detail);
    }
    if line.repeat != 1 {
        out.extend_from_slice(b",\"repeat\":");
        push_int(out, line.repeat);
    }
    if !from_file {
        out.extend_from_slice(b",\"position\":");
        push_int(out, line.position);
    }
}

#[cfg(test)]
mod tests {
    use super::{Frame, Read, Table, Unreadable};

    fn index(row: &[u8], table: &Table) -> Read<super::RowIndex> {
        super::index(row, table)
    }

    fn lines(events: &[u8], count: usize, bastion: &str, table: &Table, frame: &Frame) -> Read<Vec<u8>> {
        let mut out = b"left over from the last call".to_vec();
        super::lines(&mut out, events, count, bastion, table, frame).map(|()| out)
    }

    const TABLE: &[u8] = b"1\0connection\0\"kind\":\"event\"\0success\0,\"outcome\":\"success\"\0info\0";
    const FRAME: &[u8] = b"A\0S\0T\0H\0O";
    const EVENT: &str = r#"[1.5,0,null,"sshd",7,"connection","info",null,null,null,null,null,null,null,null,null,null,null,null,1,"journal",3,"sshd[7]: hi"]"#;

    #[test]
    fn indexes_a_row_and_writes_its_runs() {
        let table = Table::parse(TABLE).unwrap();
        let frame = Frame::parse(FRAME).unwrap();
        let row = format!("[1,\"b\",[{EVENT},{EVENT}]]");
        let found = index(row.as_bytes(), &table).unwrap();
        assert_eq!(found.bastion, "b");
        assert_eq!(found.starts.len(), 3);
        let both = &row.as_bytes()[found.starts[0]..found.starts[2]];
        let one = &row.as_bytes()[found.starts[1]..found.starts[2]];
        let written = lines(both, 2, "b", &table, &frame).unwrap();
        assert_eq!(written.len(), 2 * lines(one, 1, "b", &table, &frame).unwrap().len());
        assert!(String::from_utf8(written).unwrap().contains("\"message\":\"hi\""));
        let first = &row.as_bytes()[found.starts[0]..found.starts[1]]; // ends with the comma
        assert_eq!(lines(first, 1, "b", &table, &frame).unwrap(), lines(one, 1, "b", &table, &frame).unwrap());
        assert_eq!(lines(both, 1, "b", &table, &frame).err(), Some(Unreadable)); // more than asked for
    }

    #[test]
    fn refuses_what_python_might_read_otherwise() {
        let table = Table::parse(TABLE).unwrap();
        let refused = [
            format!("[2,\"b\",[{EVENT}]]"),
            format!("[1,7,[{EVENT}]]"),
            format!("[1,\"b\",[{EVENT}]] x"),
            format!("[1,\"b\",[{EVENT}],4]"),
            format!("[1,\"b\",[{}]]", EVENT.replace("\"connection\"", "\"unknown\"")),
            format!("[1,\"b\",[{}]]", EVENT.replace(",3,", ",3.0,")),
            format!("[1,\"b\",[{}]]", EVENT.replace("1.5,", "1e300,")),
            format!("[1,\"b\",[{}]]", EVENT.replace(",\"sshd[7]: hi\"]", "]")),
        ];
        for row in refused {
            assert!(index(row.as_bytes(), &table).is_err(), "{row}");
        }
        assert_eq!(index(b"[1,\"b\",[]]", &table).unwrap().starts.len(), 1);
    }
}
