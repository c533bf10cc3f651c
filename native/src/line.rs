//! One line, start to finish: envelope, program, message shape, client; or the verdict that Python
//! must parse it. Nothing is changed in the connection context unless the line is fully accepted.

use std::borrow::Cow;

use crate::context::{Context, Key};
use crate::envelope::{self, Envelope};
use crate::kinds::Kind;
use crate::sshd::{self, Found, Shape};

/// `bastion_guard.parsing.parser.MAX_LINE_CHARS`: longer lines are the reference's to count.
const MAX_LINE_CHARS: usize = 16 * 1024;

/// Programs the reference parses with a catalogue the native path does not have.
const PYTHON_PROGRAMS: [&[u8]; 4] = [b"sudo", b"su", b"dropbear", b"sshd(pam_unix)"];
const SSHD_PROGRAMS: [&[u8]; 3] = [b"sshd", b"sshd-session", b"sshd-auth"];
/// Programs whose PAM lines (`pam_unix(sudo:session): ...`) the native path reads; the rest of their
/// catalogue is Python's.
const PAM_PROGRAMS: [&[u8]; 2] = [b"sudo", b"su"];

pub const BY_NOBODY: i64 = 0;
pub const BY_LINE: i64 = 1;
pub const BY_CONNECTION: i64 = 2;

pub struct Event<'a> {
    pub envelope: Envelope<'a>,
    pub found: Found<'a>,
    pub ip: Option<Cow<'a, [u8]>>,
    pub port: Option<i64>,
    pub attributed_by: i64,
}

pub enum Verdict<'a> {
    OtherProgram,
    Noise,
    Event(Event<'a>),
    /// The reference parser must handle this line (the context is untouched).
    Python,
}

/// `line` holds neither `\n` nor `\r` and is ASCII (the caller has checked, see `text::line_end`).
pub fn process<'a>(context: &mut Context, line: &'a [u8]) -> Verdict<'a> {
    debug_assert!(line.is_ascii() && !line.contains(&b'\r'));
    if line.len() > MAX_LINE_CHARS {
        return Verdict::Python;
    }
    let Some(envelope) = envelope::read(line) else {
        return Verdict::Python;
    };
    if !SSHD_PROGRAMS.contains(&envelope.program) {
        if PAM_PROGRAMS.contains(&envelope.program) && envelope.message.starts_with(b"pam_") {
            // sudo and su try their own shapes first: `\s*(\S+) : ...` (sudo) and `FAILED ...`, `(to ...`,
            // `Successful su ...` (su), none of which a message starting with "pam_" can match unless its
            // first word is followed by " : ". Then the PAM catalogue, as for sshd, on the whole message.
            let word = crate::text::token(envelope.message);
            if envelope.message[word..].starts_with(b" : ") {
                return Verdict::Python;
            }
            return match sshd::pam(envelope.message) {
                None => Verdict::Python,
                Some(Shape::Noise) => Verdict::Noise,
                Some(Shape::Event(found)) => attribute(context, envelope, found),
            };
        }
        if PYTHON_PROGRAMS.contains(&envelope.program) {
            return Verdict::Python;
        }
        return Verdict::OtherProgram;
    }
    if envelope.message.starts_with(b"[ID ") || envelope.message.starts_with(b"message repeated ") {
        return Verdict::Python;
    }
    match sshd::parse(envelope.message) {
        None => Verdict::Python,
        Some(Shape::Noise) => Verdict::Noise,
        Some(Shape::Event(found)) => attribute(context, envelope, found),
    }
}

/// `bastion_guard.parsing.common.attribute`: a trusted numeric address is remembered for the
/// connection; otherwise the connection context names the client, if it knows it.
fn attribute<'a>(context: &mut Context, envelope: Envelope<'a>, found: Found<'a>) -> Verdict<'a> {
    // ConnectionContext ignores lines without a pid: nothing remembered, nothing found.
    let key: Option<Key> = envelope.pid.map(|pid| (context.host(Some(envelope.host)), pid));
    if let Some(address) = found.address.filter(|address| found.trusted && !address.is_empty()) {
        if !crate::addr::is_canonical(address) {
            return Verdict::Python; // a name, or an address Python would rewrite
        }
        let port = found.port;
        if let Some(key) = key {
            context.remember(key, address, port, envelope.epoch);
        }
        return Verdict::Event(Event { envelope, found, ip: Some(Cow::Borrowed(address)), port, attributed_by: BY_LINE });
    }
    let (ip, port, attributed_by) = match key.and_then(|key| context.lookup(&key, envelope.epoch)) {
        // A negative port is Python's marker for one beyond int64 (NativeContext keeps the number):
        // only Python can put it in the event.
        Some((_, Some(port))) if port < 0 => return Verdict::Python,
        Some((ip, port)) => (Some(Cow::Owned(ip.to_vec())), port, BY_CONNECTION),
        None => (None, None, BY_NOBODY),
    };
    Verdict::Event(Event { envelope, found, ip, port, attributed_by })
}

impl Kind {
    pub fn code(self) -> i64 {
        self as i64
    }
}
