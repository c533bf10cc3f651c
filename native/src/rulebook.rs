//! The rules as Python hands them over once: a compact little-endian description, read into `Rule`s.
//!
//! Python (`bastion_guard/native/rulebook.py`) writes, for the rule set, an i64 rule count, then per
//! rule: u64 mask of counted kind codes, i64 key-by (0 ip, 1 user, 2 ip+user), i64 IPv4 and IPv6 prefix
//! lengths, i64 count mode (0 events, 1 connections, 2 distinct users), i64 count, f64 window seconds,
//! i64 ban (1) or alert (0), i64 reset on success (0/1); then the user filter (i64 number of names, -1
//! for none, each an i64 length and its UTF-8 bytes) and the `networks` and `outside` filters (i64 number,
//! each i64 version 4/6, i64 prefix length, 16 bytes of address, big-endian). Only what the counting
//! needs crosses over: names, ban policies and allowlists stay with Python, which decides.

use std::collections::HashSet;

use crate::net::{Ip, Net};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyBy {
    Ip,
    User,
    IpUser,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Events,
    Connections,
    DistinctUsers,
}

/// One rule's settings (the counting state lives in `engine::Counter`).
#[derive(Debug)]
pub struct Rule {
    pub kinds: u64,
    pub key_by: KeyBy,
    pub v4_prefix: u32,
    pub v6_prefix: u32,
    pub mode: Mode,
    pub count: i64,
    pub window_secs: f64,
    pub bans: bool,
    pub reset_on_success: bool,
    pub users: Option<HashSet<Box<[u8]>>>,
    pub networks: Option<Vec<Net>>,
    pub outside: Option<Vec<Net>>,
}

impl Rule {
    /// Any of the user and network conditions is set (`_Rule.filtered`).
    pub fn filtered(&self) -> bool {
        self.users.is_some() || self.networks.is_some() || self.outside.is_some()
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, length: usize) -> Option<&'a [u8]> {
        let slice = self.data.get(self.at..self.at.checked_add(length)?)?;
        self.at += length;
        Some(slice)
    }

    fn word(&mut self) -> Option<[u8; 8]> {
        self.bytes(8)?.try_into().ok()
    }

    fn int(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.word()?))
    }

    fn float(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.word()?))
    }

    /// A non-negative count, or `None` for -1 ("not set"); anything else is a malformed description.
    fn optional_count(&mut self) -> Option<Option<usize>> {
        match self.int()? {
            -1 => Some(None),
            n if n >= 0 => Some(Some(usize::try_from(n).ok()?)),
            _ => None,
        }
    }

    fn prefix(&mut self, maximum: i64) -> Option<u32> {
        let value = self.int()?;
        (0..=maximum).contains(&value).then_some(value as u32)
    }

    fn networks(&mut self) -> Option<Option<Vec<Net>>> {
        let Some(number) = self.optional_count()? else {
            return Some(None);
        };
        let mut networks = Vec::with_capacity(number.min(1024));
        for _ in 0..number {
            let version = self.int()?;
            let length = self.prefix(if version == 4 { 32 } else { 128 })?;
            let value = u128::from_be_bytes(self.bytes(16)?.try_into().ok()?);
            let address = match version {
                4 => Ip::V4(u32::try_from(value).ok()?),
                6 => Ip::V6(value),
                _ => return None,
            };
            networks.push(Net { address, length });
        }
        Some(Some(networks))
    }

    fn users(&mut self) -> Option<Option<HashSet<Box<[u8]>>>> {
        let Some(number) = self.optional_count()? else {
            return Some(None);
        };
        let mut users = HashSet::with_capacity(number.min(1024));
        for _ in 0..number {
            let length = usize::try_from(self.int()?).ok()?;
            users.insert(self.bytes(length)?.into());
        }
        Some(Some(users))
    }

    fn rule(&mut self) -> Option<Rule> {
        let kinds = u64::from_le_bytes(self.word()?);
        let key_by = match self.int()? {
            0 => KeyBy::Ip,
            1 => KeyBy::User,
            2 => KeyBy::IpUser,
            _ => return None,
        };
        let v4_prefix = self.prefix(32)?;
        let v6_prefix = self.prefix(128)?;
        let mode = match self.int()? {
            0 => Mode::Events,
            1 => Mode::Connections,
            2 => Mode::DistinctUsers,
            _ => return None,
        };
        let count = self.int()?;
        let window_secs = self.float()?;
        let bans = self.int()? != 0;
        let reset_on_success = self.int()? != 0;
        let users = self.users()?;
        let networks = self.networks()?;
        let outside = self.networks()?;
        Some(Rule {
            kinds, key_by, v4_prefix, v6_prefix, mode, count, window_secs, bans, reset_on_success, users, networks,
            outside,
        })
    }
}

/// The rules of a description, or `None` if it is malformed (Python wrote it, so that is a bug).
pub fn read(data: &[u8]) -> Option<Vec<Rule>> {
    let mut reader = Reader { data, at: 0 };
    let number = usize::try_from(reader.int()?).ok()?;
    let rules = (0..number).map(|_| reader.rule()).collect::<Option<Vec<_>>>()?;
    (reader.at == data.len()).then_some(rules)
}
