//! The hot sshd and PAM message shapes, each the exact semantics of its reference regex in
//! `bastion_guard/parsing/sshd.py` / `pam.py` on the lines it accepts, and `None` (the line goes to
//! the Python parser) on any line where that cannot be shown cheaply.
//!
//! Attribution follows the reference: where the attacker-chosen user field (`[^:]*`, greedy) comes
//! before the address, the split is the *rightmost* one the regex allows, so the address is the one in
//! sshd's own suffix; where attacker text follows the address it is read from the start. A user field
//! longer than 100 characters is never trusted: the client then comes from the connection context.

use std::borrow::Cow;

use crate::kinds::Kind;
use crate::text::{count, digits, find, is_space, is_word, number, rfind, run, token};

pub const MAX_PLAIN_USER_LENGTH: usize = 100;

pub const FAILURE: u8 = 0;
pub const SUCCESS: u8 = 1;
pub const INFO: u8 = 2;

/// What a message says, before its client is resolved against the connection context.
pub struct Found<'a> {
    pub kind: Kind,
    pub outcome: u8,
    pub user: Option<&'a [u8]>,
    pub method: Option<&'a [u8]>,
    pub key_type: Option<&'a [u8]>,
    pub fingerprint: Option<&'a [u8]>,
    pub user_valid: Option<bool>,
    pub detail: Option<Cow<'a, [u8]>>,
    /// The client as written (`None`/empty: none), its port, and whether the text may be trusted.
    pub address: Option<&'a [u8]>,
    pub port: Option<i64>,
    pub trusted: bool,
}

pub enum Shape<'a> {
    Noise,
    Event(Found<'a>),
}

impl<'a> Found<'a> {
    fn new(kind: Kind, outcome: u8) -> Self {
        Found {
            kind, outcome, user: None, method: None, key_type: None, fingerprint: None, user_valid: None,
            detail: None, address: None, port: None, trusted: true,
        }
    }
}

fn trustworthy(user: Option<&[u8]>) -> bool {
    user.is_none_or(|user| user.len() <= MAX_PLAIN_USER_LENGTH)
}

const LEVEL_HEADS: [&[u8]; 4] = [b"error:", b"fatal:", b"warning:", b"debug1:"];
const PREAUTH: &[u8] = b" [preauth]";

/// `parse_sshd` up to the catalogue: level prefix, first word, `[preauth]`; then the hot shapes.
pub fn parse(message: &[u8]) -> Option<Shape<'_>> {
    let mut body = message;
    let mut space = find(body, b" ");
    if let Some(at) = space {
        if at > 0 && LEVEL_HEADS.contains(&&body[..at]) {
            body = &body[at + 1..];
            space = find(body, b" ");
        } else if body.starts_with(b"kernel:") {
            return None;
        }
    } else if body.starts_with(b"kernel:") {
        return None;
    }
    let head = match space {
        Some(at) => &body[..at],
        None => body,
    };
    let preauth = body.ends_with(PREAUTH);
    if preauth {
        body = &body[..body.len() - PREAUTH.len()];
    }
    match head {
        b"Failed" => failed(body),
        b"Accepted" => accepted(body),
        b"Invalid" => invalid_user(body),
        b"Connection" => connection(body, preauth),
        b"Disconnected" => disconnected(body, preauth),
        b"Received" => received(body, preauth),
        b"maximum" => max_auth(body),
        b"Disconnecting" => disconnecting(body),
        b"Timeout" => timeout(body),
        b"kex_exchange_identification:" => kex(body),
        b"banner" => addressed_reason(body, b"banner exchange: Connection from ", Kind::HandshakeError),
        b"Unable" => addressed_reason(body, b"Unable to negotiate with ", Kind::NegotiationFailure),
        b"User" => exact_noise(body, b"User child is on pid ", true),
        b"Postponed" => exact_noise(body, b"Postponed ", false),
        b"Starting" => exact_noise(body, b"Starting session: ", false),
        b"srclimit_penalise:" => exact_noise(body, b"srclimit_penalise: ", false),
        b"Did" => no_identification(body),
        _ if head.starts_with(b"pam_") || head.starts_with(b"PAM") => pam(body),
        _ => None,
    }
}

/// `PREFIX\d+` (when `numeric`) or `PREFIX.*` (otherwise), the whole body: a message with nothing to act on.
fn exact_noise<'a>(body: &'a [u8], prefix: &[u8], numeric: bool) -> Option<Shape<'a>> {
    let rest = body.strip_prefix(prefix)?;
    if numeric && (rest.is_empty() || digits(rest) != rest.len()) {
        return None;
    }
    Some(Shape::Noise)
}

/// `(?P<method>\S+) for ` at the start of `text`: the method and what follows.
fn method_for(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let length = token(text);
    if length == 0 {
        return None;
    }
    Some((&text[..length], text[length..].strip_prefix(b" for ")?))
}

/// Where `U from SUFFIX` splits when `U` is `[^:]*` and greedy: at the last ` from ` before the first
/// colon (a user field cannot hold a colon). Returns the user and the suffix.
fn user_from(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = find(text, b":").unwrap_or(text.len());
    let at = rfind(&text[..colon], b" from ")?;
    Some((&text[..at], &text[at + 6..]))
}

/// `ADDR port N[ ssh2][: TAIL]` where the reference has `(?P<addr>\S+?)(?: port (?P<port>\d+))?(?: ssh[12])?
/// (?:: (?P<tail>.*))?`. The lazy address can stop early only at a `: ` inside the token, which needs a
/// token ending in `:`; such lines are refused. The port is required here (the strict subset).
fn address_port_tail(text: &[u8], allow_tail: bool) -> Option<(&[u8], i64, Option<&[u8]>)> {
    let length = token(text);
    if length == 0 || text[length - 1] == b':' {
        return None;
    }
    let rest = text[length..].strip_prefix(b" port ")?;
    let count = digits(rest);
    let port = number(&rest[..count])?;
    let mut rest = &rest[count..];
    if rest.starts_with(b" ssh2") || rest.starts_with(b" ssh1") {
        rest = &rest[5..];
    }
    if rest.is_empty() {
        return Some((&text[..length], port, None));
    }
    if allow_tail {
        if let Some(tail) = rest.strip_prefix(b": ") {
            return Some((&text[..length], port, Some(tail)));
        }
    }
    None
}

/// `TYPE SHA256:FP...` from a key tail: `_KEY_INFO`'s type and fingerprint groups; other fingerprint
/// forms go to Python. With `certificate_matters`, a tail carrying ` ID ` (a certificate) does too.
fn key_info(tail: Option<&[u8]>, certificate_matters: bool) -> Option<(Option<&[u8]>, Option<&[u8]>)> {
    let tail = match tail {
        None | Some(b"") => return Some((None, None)),
        Some(tail) => tail,
    };
    let type_length = run(tail, |byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || b"@.-".contains(&byte));
    if type_length == 0 {
        return None;
    }
    let rest = tail[type_length..].strip_prefix(b" SHA256:")?;
    let fingerprint_length =
        run(rest, |byte| byte.is_ascii_alphanumeric() || b"+/=$".contains(&byte));
    if fingerprint_length == 0 {
        return None;
    }
    if certificate_matters && rest[fingerprint_length..].starts_with(b" ID ") {
        return None;
    }
    let fingerprint_start = type_length + 1;
    Some((Some(&tail[..type_length]), Some(&tail[fingerprint_start..fingerprint_start + 7 + fingerprint_length])))
}

fn failed(body: &[u8]) -> Option<Shape<'_>> {
    let (method, rest) = method_for(body.strip_prefix(b"Failed ")?)?;
    let (invalid, rest) = match rest.strip_prefix(b"invalid user ").or_else(|| rest.strip_prefix(b"illegal user ")) {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let (user, suffix) = user_from(rest)?;
    let (address, port, tail) = address_port_tail(suffix, true)?;
    let (key_type, fingerprint) = key_info(tail, false)?;
    let mut found = Found::new(Kind::AuthFailure, FAILURE);
    found.user = Some(user);
    found.method = Some(method);
    found.key_type = key_type;
    found.fingerprint = fingerprint;
    found.user_valid = Some(!invalid);
    found.address = Some(address);
    found.port = Some(port);
    found.trusted = trustworthy(found.user);
    Some(Shape::Event(found))
}

fn accepted(body: &[u8]) -> Option<Shape<'_>> {
    // "Accepted key ..." (VERBOSE) is noise unless the first regex could match, which needs " for " next.
    if body.starts_with(b"Accepted key ") && !body.starts_with(b"Accepted key for ") {
        return Some(Shape::Noise);
    }
    let (method, rest) = method_for(body.strip_prefix(b"Accepted ")?)?;
    let (user, suffix) = user_from(rest)?;
    let (address, port, tail) = address_port_tail(suffix, true)?;
    let (key_type, fingerprint) = key_info(tail, true)?;
    let mut found = Found::new(Kind::AuthSuccess, SUCCESS);
    found.user = Some(user);
    found.method = Some(method);
    found.key_type = key_type;
    found.fingerprint = fingerprint;
    found.user_valid = Some(true);
    found.address = Some(address);
    found.port = Some(port);
    found.trusted = trustworthy(found.user);
    Some(Shape::Event(found))
}

fn invalid_user(body: &[u8]) -> Option<Shape<'_>> {
    let (user, suffix) = user_from(body.strip_prefix(b"Invalid user ")?)?;
    let (address, port, _) = address_port_tail(suffix, false)?;
    if suffix.ends_with(b" ssh2") || suffix.ends_with(b" ssh1") {
        return None; // not in this regex: address_port_tail would have accepted it
    }
    let mut found = Found::new(Kind::InvalidUser, FAILURE);
    found.user = Some(user);
    found.user_valid = Some(false);
    found.address = Some(address);
    found.port = Some(port);
    found.trusted = trustworthy(found.user);
    Some(Shape::Event(found))
}

fn max_auth(body: &[u8]) -> Option<Shape<'_>> {
    let rest = body.strip_prefix(b"maximum authentication attempts exceeded for ")?;
    let (invalid, rest) = match rest.strip_prefix(b"invalid user ") {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let (user, suffix) = user_from(rest)?;
    let (address, port, _) = address_port_tail(suffix, false)?;
    let mut found = Found::new(Kind::MaxAuthExceeded, FAILURE);
    found.user = Some(user);
    found.user_valid = Some(!invalid);
    found.address = Some(address);
    found.port = Some(port);
    found.trusted = trustworthy(found.user);
    Some(Shape::Event(found))
}

/// `U (?P<addr>\S+) port (?P<port>\d+)` anchored at the end, `U` being `[^:]*` and greedy: the address
/// is the token before the final ` port N`, the user everything before the space in front of it.
fn user_address_port(text: &[u8]) -> Option<(&[u8], &[u8], i64)> {
    let at = rfind(text, b" port ")?;
    let port_text = &text[at + 6..];
    if port_text.is_empty() || digits(port_text) != port_text.len() {
        return None;
    }
    let before = &text[..at];
    let space = before.iter().rposition(|&byte| byte == b' ')?;
    let address = &before[space + 1..];
    if address.is_empty() || address.iter().any(|&byte| is_space(byte)) {
        return None;
    }
    let user = &before[..space];
    if user.contains(&b':') {
        return None;
    }
    Some((user, address, number(port_text)?))
}

/// `(?P<addr>\S+?)(?: port (?P<port>\d+))?` as the whole text.
fn address_optional_port(text: &[u8]) -> Option<(&[u8], Option<i64>)> {
    let length = token(text);
    if length == 0 {
        return None;
    }
    let rest = &text[length..];
    if rest.is_empty() {
        return Some((text, None));
    }
    let port_text = rest.strip_prefix(b" port ")?;
    if port_text.is_empty() || digits(port_text) != port_text.len() {
        return None;
    }
    Some((&text[..length], Some(number(port_text)?)))
}

/// `_closed` of the reference: how a connection that ended is counted.
fn closed<'a>(
    state: Option<&'a [u8]>, user: Option<&'a [u8]>, address: &'a [u8], port: Option<i64>, how: &'a [u8],
    preauth: bool,
) -> Shape<'a> {
    let valid = state.map(|state| state != b"invalid");
    let (kind, outcome, user, valid) = if preauth || state.is_some_and(|state| state != b"user") {
        (Kind::PreauthClose, FAILURE, user, valid)
    } else if state == Some(b"user") || port.is_none() {
        (Kind::Disconnect, INFO, user, valid)
    } else {
        (Kind::PreauthClose, FAILURE, None, None)
    };
    let mut found = Found::new(kind, outcome);
    found.user = user;
    found.user_valid = valid;
    found.detail = Some(Cow::Borrowed(how));
    found.address = Some(address);
    found.port = port;
    found.trusted = trustworthy(user);
    Shape::Event(found)
}

fn connection(body: &[u8], preauth: bool) -> Option<Shape<'_>> {
    if let Some(rest) = body.strip_prefix(b"Connection from ") {
        return connection_from(rest);
    }
    let (how, rest): (&[u8], &[u8]) = if let Some(rest) = body.strip_prefix(b"Connection closed by ") {
        (b"closed", rest)
    } else {
        (b"reset", body.strip_prefix(b"Connection reset by ")?)
    };
    for state in [&b"invalid"[..], b"authenticating"] {
        if let Some(after) = rest.strip_prefix(state).and_then(|after| after.strip_prefix(b" user ")) {
            let (user, address, port) = user_address_port(after)?;
            return Some(closed(Some(state), Some(user), address, Some(port), how, preauth));
        }
    }
    let (address, port) = address_optional_port(rest)?;
    Some(closed(None, None, address, port, how, preauth))
}

fn connection_from(rest: &[u8]) -> Option<Shape<'_>> {
    let length = token(rest);
    if length == 0 {
        return None;
    }
    let after = rest[length..].strip_prefix(b" port ")?;
    let count = digits(after);
    let port = number(&after[..count])?;
    let after = &after[count..];
    let local = if after.is_empty() {
        None
    } else {
        let local = after.strip_prefix(b" on ")?;
        let local_length = token(local);
        let local_port = local.get(local_length..)?.strip_prefix(b" port ")?;
        let local_port_length = digits(local_port);
        if local_length == 0 || local_port_length == 0 {
            return None;
        }
        let end = local_length + 6 + local_port_length;
        let tail = &local[end..];
        if !tail.is_empty() {
            let quoted = tail.strip_prefix(b" rdomain \"")?;
            if quoted.last() != Some(&b'"') || quoted[..quoted.len() - 1].contains(&b'"') {
                return None;
            }
        }
        Some(&local[..end])
    };
    let mut found = Found::new(Kind::Connection, INFO);
    found.detail = local.map(Cow::Borrowed);
    found.address = Some(&rest[..length]);
    found.port = Some(port);
    Some(Shape::Event(found))
}

fn disconnected(body: &[u8], preauth: bool) -> Option<Shape<'_>> {
    let rest = body.strip_prefix(b"Disconnected from ")?;
    for state in [&b"invalid"[..], b"authenticating", b"user"] {
        let Some(after) = rest.strip_prefix(state).and_then(|after| after.strip_prefix(b" ")) else {
            continue;
        };
        // `(?:user )?` is greedy: with it taken when the split allows, else without it.
        let split = after
            .strip_prefix(b"user ")
            .and_then(user_address_port)
            .or_else(|| user_address_port(after));
        if let Some((user, address, port)) = split {
            return Some(closed(Some(state), Some(user), address, Some(port), b"", preauth));
        }
        break; // the first regex failed; the second one is tried below
    }
    let (address, port) = address_optional_port(rest)?;
    Some(closed(None, None, address, port, b"", preauth))
}

/// `(?: port (?P<port>\d+))?: ?(?P<code>\d+): ?(?P<reason>.*)` as the whole text.
fn disconnect_rest(text: &[u8]) -> Option<(Option<&[u8]>, &[u8], &[u8])> {
    fn code_reason(text: &[u8]) -> Option<(&[u8], &[u8])> {
        let text = text.strip_prefix(b":")?;
        let text = text.strip_prefix(b" ").unwrap_or(text);
        let count = digits(text);
        if count == 0 {
            return None;
        }
        let reason = text[count..].strip_prefix(b":")?;
        Some((&text[..count], reason.strip_prefix(b" ").unwrap_or(reason)))
    }
    if let Some(port_text) = text.strip_prefix(b" port ") {
        let count = digits(port_text);
        if count > 0 {
            if let Some((code, reason)) = code_reason(&port_text[count..]) {
                return Some((Some(&port_text[..count]), code, reason));
            }
        }
    }
    let (code, reason) = code_reason(text)?;
    Some((None, code, reason))
}

fn received(body: &[u8], preauth: bool) -> Option<Shape<'_>> {
    let rest = body.strip_prefix(b"Received disconnect from ")?;
    // (?P<addr>\S+?) is lazy: the shortest address after which the rest matches.
    let (address, port_text, code, reason) = (1..=token(rest))
        .find_map(|length| disconnect_rest(&rest[length..]).map(|(port, code, reason)| (&rest[..length], port, code, reason)))?;
    let port = match port_text {
        Some(text) => Some(number(text)?),
        None => None,
    };
    let (kind, outcome) =
        if preauth || code != b"11" { (Kind::PreauthDisconnect, FAILURE) } else { (Kind::Disconnect, INFO) };
    let mut found = Found::new(kind, outcome);
    found.detail = Some(Cow::Borrowed(reason));
    found.address = Some(address);
    found.port = port;
    Some(Shape::Event(found))
}

fn disconnecting(body: &[u8]) -> Option<Shape<'_>> {
    let rest = body.strip_prefix(b"Disconnecting ")?;
    let (state, rest) = [&b"invalid"[..], b"authenticating"]
        .into_iter()
        .find_map(|state| Some((state, rest.strip_prefix(state)?.strip_prefix(b" user ")?)))?;
    // U [^:]* greedy, then " (\S+) port (\d+): (.*)": the rightmost space before the first colon
    // from which the rest matches.
    let colon = find(rest, b":").unwrap_or(rest.len());
    let (user, address, port_text, reason) = (0..colon).rev().filter(|&at| rest[at] == b' ').find_map(|at| {
        let after = &rest[at + 1..];
        let length = token(after);
        if length == 0 {
            return None;
        }
        let port_text = after[length..].strip_prefix(b" port ")?;
        let count = digits(port_text);
        if count == 0 {
            return None;
        }
        let reason = port_text[count..].strip_prefix(b": ")?;
        Some((&rest[..at], &after[..length], &port_text[..count], reason))
    })?;
    let kind = if reason.starts_with(b"Too many authentication failures") {
        Kind::TooManyAuthFailures
    } else {
        Kind::PreauthClose
    };
    let mut found = Found::new(kind, FAILURE);
    found.user = Some(user);
    found.user_valid = Some(state != b"invalid");
    found.detail = Some(Cow::Borrowed(reason));
    found.address = Some(address);
    found.port = Some(number(port_text)?);
    found.trusted = trustworthy(found.user);
    Some(Shape::Event(found))
}

fn timeout(body: &[u8]) -> Option<Shape<'_>> {
    let rest = body.strip_prefix(b"Timeout before authentication for ")?;
    let length = token(rest);
    let port_text = rest.get(length..)?.strip_prefix(b" port ")?;
    if length == 0 || port_text.is_empty() || digits(port_text) != port_text.len() {
        return None;
    }
    let mut found = Found::new(Kind::PreauthTimeout, FAILURE);
    found.address = Some(&rest[..length]);
    found.port = Some(number(port_text)?);
    Some(Shape::Event(found))
}

/// `Did not receive identification string from (?P<addr>\S+?)(?: port (?P<port>\d+))?`: a handshake error
/// with the address in the line and no reason.
fn no_identification(body: &[u8]) -> Option<Shape<'_>> {
    let (address, port) = address_optional_port(body.strip_prefix(b"Did not receive identification string from ")?)?;
    let mut found = Found::new(Kind::HandshakeError, FAILURE);
    found.address = Some(address);
    found.port = port;
    Some(Shape::Event(found))
}

fn kex(body: &[u8]) -> Option<Shape<'_>> {
    let reason = body.strip_prefix(b"kex_exchange_identification: ")?;
    let mut found = Found::new(Kind::HandshakeError, FAILURE);
    found.detail = Some(Cow::Borrowed(reason));
    found.trusted = false; // no address in the line: the connection context names the client
    Some(Shape::Event(found))
}

/// `PREFIX(?P<addr>\S+?) port (?P<port>\d+): (?P<reason>.*)`: the lazy address ends where ` port `
/// starts, which is the end of its token.
fn addressed_reason<'a>(body: &'a [u8], prefix: &[u8], kind: Kind) -> Option<Shape<'a>> {
    let rest = body.strip_prefix(prefix)?;
    let length = token(rest);
    let port_text = rest.get(length..)?.strip_prefix(b" port ")?;
    let count = digits(port_text);
    let reason = port_text[count..].strip_prefix(b": ")?;
    if length == 0 || count == 0 {
        return None;
    }
    let mut found = Found::new(kind, FAILURE);
    found.detail = Some(Cow::Borrowed(reason));
    found.address = Some(&rest[..length]);
    found.port = Some(number(&port_text[..count])?);
    Some(Shape::Event(found))
}

// --- PAM ------------------------------------------------------------------------------------------------

pub fn pam(body: &[u8]) -> Option<Shape<'_>> {
    if let Some(rest) = body.strip_prefix(b"pam_unix(") {
        let service_length = run(rest, |byte| is_word(byte) || byte == b'-');
        let service = &rest[..service_length];
        let after = &rest[service_length..];
        if service_length > 0 {
            if let Some(fields) = after.strip_prefix(b":auth): authentication failure; ") {
                if service != b"sshd" {
                    return None; // sudo/su kinds: rare here, left to Python
                }
                return Some(pam_fields(Found::new(Kind::PamAuthFailure, FAILURE), fields));
            }
            if let Some(session) = after.strip_prefix(b":session): session ") {
                return pam_session(service, session);
            }
        }
        return Some(Shape::Noise); // `pam_\w+\(.*`: "check pass; user unknown" and the like
    }
    if let Some(rest) = body.strip_prefix(b"PAM ") {
        let count = digits(rest);
        let after = rest[count..].strip_prefix(b" more authentication failure")?;
        let fields = after.strip_prefix(b"s; ").or_else(|| after.strip_prefix(b"; "))?;
        if count == 0 {
            return None;
        }
        let mut detail = rest[..count].to_vec();
        detail.extend_from_slice(b" more failures");
        let mut found = Found::new(Kind::PamMoreFailures, FAILURE);
        found.detail = Some(Cow::Owned(detail));
        return Some(pam_fields(found, fields));
    }
    let word = run(body.strip_prefix(b"pam_")?, is_word);
    if word > 0 && body.get(4 + word) == Some(&b'(') {
        return Some(Shape::Noise);
    }
    None
}

/// `_pam_fields`: `logname=\S* uid=\d* euid=\d* tty=\S* ruser=\S* rhost=(\S*)(?:\s+user=(.*?))?\s*`.
/// `rhost=` comes before the one attacker-chosen field, so it is read from the start; a field list that
/// does not match, or that shows `rhost=` twice, is attributed only through the connection context.
fn pam_fields<'a>(mut found: Found<'a>, fields: &'a [u8]) -> Shape<'a> {
    found.method = Some(b"pam");
    found.trusted = false;
    if let Some((rhost, user)) = split_pam_fields(fields) {
        found.user = user;
        found.trusted = count(fields, b"rhost=") == 1 && trustworthy(user) && !rhost.is_empty();
        found.address = if rhost.is_empty() { None } else { Some(rhost) };
    }
    Shape::Event(found)
}

fn split_pam_fields(fields: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut rest = fields;
    for (name, numeric) in [(&b"logname="[..], false), (b" uid=", true), (b" euid=", true), (b" tty=", false),
                            (b" ruser=", false)] {
        rest = rest.strip_prefix(name)?;
        let length = if numeric { digits(rest) } else { token(rest) };
        rest = &rest[length..];
    }
    rest = rest.strip_prefix(b" rhost=")?;
    let rhost_length = token(rest);
    let rhost = &rest[..rhost_length];
    rest = &rest[rhost_length..];
    let spaces = run(rest, is_space);
    if let Some(user) = rest[spaces..].strip_prefix(b"user=") {
        if spaces > 0 {
            let kept = user.len() - user.iter().rev().take_while(|&&byte| is_space(byte)).count();
            return Some((rhost, Some(&user[..kept])));
        }
    }
    if spaces == rest.len() { Some((rhost, None)) } else { None }
}

fn pam_session<'a>(service: &'a [u8], session: &'a [u8]) -> Option<Shape<'a>> {
    let (kind, rest) = if let Some(rest) = session.strip_prefix(b"opened for user ") {
        (Kind::SessionOpened, rest)
    } else {
        (Kind::SessionClosed, session.strip_prefix(b"closed for user ")?)
    };
    let length = run(rest, |byte| !is_space(byte) && byte != b'(');
    if length == 0 {
        return None;
    }
    let mut after = &rest[length..];
    if let Some(uid) = after.strip_prefix(b"(uid=") {
        let count = digits(uid);
        if let Some(tail) = uid[count..].strip_prefix(b")") {
            if count > 0 {
                after = tail;
            }
        }
    }
    if !(after.is_empty() || after.starts_with(b" by ")) {
        return None;
    }
    if service != b"sshd" {
        return Some(Shape::Noise); // sudo/su/cron sessions: their command lines say more
    }
    let mut found = Found::new(kind, INFO);
    found.user = Some(&rest[..length]);
    found.user_valid = Some(true);
    found.trusted = false;
    Some(Shape::Event(found))
}
