//! The counting half of `bastion_guard.rules.Engine`, natively: the same windows, silences, sweeps and
//! cap, step for step, so that no Python runs for an event that only counts.
//!
//! Deciding stays in Python (allowlists, growing bans, the `Decision` and its evidence, recidive): when a
//! window reaches its count the engine stops with a `Threshold` and keeps the event it was counting
//! (`Pending`); Python decides, reports the outcome through `ban` / `lift` / `quiet`, and calls `resume`,
//! which goes on with the event's next rule exactly where `Engine.feed` would. Python's own rules
//! (`source: bans`) are swept by Python: the engine says when a sweep ran (`Step::swept`).
//!
//! Every method mirrors the Python method named in its comment; read them side by side.

use std::collections::HashMap;

use crate::net;
use crate::rulebook::{KeyBy, Mode, Rule};
use crate::window::{self, Entry, Window, Windows};

/// One event as the engine reads it (`rules.engine.ENGINE_FIELDS`); `kind` is the engine's kind code.
#[derive(Clone, Copy, Debug)]
pub struct EngineEvent<'a> {
    pub epoch: f64,
    pub kind: u32,
    pub ip: Option<&'a [u8]>,
    pub user: Option<&'a [u8]>,
    /// `float(event.pid)`.
    pub pid: Option<f64>,
    pub repeat: i64,
    pub source: i64,
    pub position: i64,
}

/// An event kept across the call boundary while Python decides (owned: the chunk may be gone).
struct Pending {
    epoch: f64,
    kind: u32,
    ip: Option<Vec<u8>>,
    user: Option<Vec<u8>>,
    pid: Option<f64>,
    repeat: i64,
    source: i64,
    position: i64,
    /// Index into the kind's rule list of the next rule to count the event against.
    next: usize,
}

impl Pending {
    fn event(&self) -> EngineEvent<'_> {
        EngineEvent {
            epoch: self.epoch, kind: self.kind, ip: self.ip.as_deref(), user: self.user.as_deref(), pid: self.pid,
            repeat: self.repeat, source: self.source, position: self.position,
        }
    }
}

/// A window that reached its rule's count: what `Engine._decide` is called with.
#[derive(Debug)]
pub struct Threshold {
    pub rule: usize,
    pub key: Vec<u8>,
    pub count: i64,
    pub kind: u32,
    pub epoch: f64,
    pub user: Option<Vec<u8>>,
    /// (epoch, position, source) per entry, oldest first.
    pub evidence: Vec<(f64, i64, i64)>,
}

/// What feeding one event did.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Step {
    /// The sweep clock was due and the engine swept (Python sweeps its own rules at the event's epoch).
    pub swept: bool,
    /// A `Threshold` waits for Python; call `resume` after deciding it.
    pub threshold: bool,
}

/// The key text could not be made: Python's `ipaddress` would raise `ValueError` on this address.
#[derive(Debug, PartialEq, Eq)]
pub struct BadAddress;

/// A rule's settings and its counting state (`_Rule`).
struct Counter {
    rule: Rule,
    windows: Windows,
    quiet: HashMap<Box<[u8]>, f64>,
    events: i64,
    while_banned: i64,
}

pub struct Engine {
    counters: Vec<Counter>,
    /// Per kind code, the counters counting that kind, in rule order (`Engine._by_kind`).
    by_kind: Vec<Vec<usize>>,
    resetting: Vec<usize>,
    auth_success: u32,
    /// Banned target text -> expiry (`Engine._active`), shared by every ban rule, looked up by key text.
    active: HashMap<Box<[u8]>, f64>,
    next_sweep: f64,
    sweep_interval: f64,
    max_keys: usize,
    pending: Option<Pending>,
    threshold: Option<Threshold>,
    /// The key text being built, reused from event to event.
    key: Vec<u8>,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, auth_success: u32, sweep_interval: f64, max_keys: usize) -> Engine {
        let mut by_kind: Vec<Vec<usize>> = vec![Vec::new(); 64];
        for (index, rule) in rules.iter().enumerate() {
            for (code, counters) in by_kind.iter_mut().enumerate() {
                if rule.kinds & (1 << code) != 0 {
                    counters.push(index);
                }
            }
        }
        let resetting = rules.iter().enumerate().filter(|(_, rule)| rule.reset_on_success).map(|(i, _)| i).collect();
        let counters = rules
            .into_iter()
            .map(|rule| Counter { rule, windows: Windows::default(), quiet: HashMap::new(), events: 0, while_banned: 0 })
            .collect();
        Engine {
            counters, by_kind, resetting, auth_success, active: HashMap::new(), next_sweep: 0.0, sweep_interval,
            max_keys, pending: None, threshold: None, key: Vec::new(),
        }
    }

    pub fn next_sweep(&self) -> f64 {
        self.next_sweep
    }

    /// (events, while_banned) of each rule, in rule order.
    pub fn stats(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.counters.iter().map(|counter| (counter.events, counter.while_banned))
    }

    /// `Engine.tracked_keys` over the native rules.
    pub fn tracked_keys(&self) -> usize {
        self.counters.iter().map(|counter| counter.windows.len()).sum()
    }

    pub fn threshold(&self) -> Option<&Threshold> {
        self.threshold.as_ref()
    }

    pub fn active(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        self.active.iter().map(|(target, until)| (&target[..], *until))
    }

    /// `Engine.feed` up to the first threshold. A threshold still waiting is dropped: the caller moved on.
    pub fn feed(&mut self, event: &EngineEvent<'_>) -> Result<Step, BadAddress> {
        self.pending = None;
        self.threshold = None;
        let mut step = Step::default();
        if event.epoch >= self.next_sweep {
            self.sweep(event.epoch);
            step.swept = true;
        }
        if event.kind == self.auth_success && !self.resetting.is_empty() {
            self.reset(event)?;
        }
        step.threshold = self.count_from(event, 0)?;
        Ok(step)
    }

    /// Go on with the event that stopped at a threshold; true if it stops at another one.
    pub fn resume(&mut self) -> Result<bool, BadAddress> {
        self.threshold = None;
        let Some(pending) = self.pending.take() else {
            return Ok(false);
        };
        self.count_from(&pending.event(), pending.next)
    }

    /// The `for rule in rules` loop of `Engine.feed`, from the `first`-th rule of the event's kind.
    fn count_from(&mut self, event: &EngineEvent<'_>, first: usize) -> Result<bool, BadAddress> {
        let Some(rules) = self.by_kind.get(event.kind as usize) else {
            return Ok(false);
        };
        for position in first..rules.len() {
            let index = self.by_kind[event.kind as usize][position];
            if let Some(threshold) = self.count(index, event)? {
                self.threshold = Some(threshold);
                self.pending = Some(Pending {
                    epoch: event.epoch, kind: event.kind, ip: event.ip.map(<[u8]>::to_vec),
                    user: event.user.map(<[u8]>::to_vec), pid: event.pid, repeat: event.repeat, source: event.source,
                    position: event.position, next: position + 1,
                });
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `Engine._count`: filters, key, silences, then the window.
    fn count(&mut self, index: usize, event: &EngineEvent<'_>) -> Result<Option<Threshold>, BadAddress> {
        let counter = &mut self.counters[index];
        if counter.rule.filtered() && !passes_filters(&counter.rule, event) {
            return Ok(None);
        }
        if !key_of(&counter.rule, event, &mut self.key)? {
            return Ok(None);
        }
        counter.events += 1;
        let silenced = if counter.rule.bans { &mut self.active } else { &mut counter.quiet };
        if let Some(&until) = silenced.get(&self.key[..]) {
            if event.epoch < until {
                counter.while_banned += 1;
                return Ok(None);
            }
            silenced.remove(&self.key[..]);
        }
        let reference = window::pack(event.position, event.source);
        Ok(count_window(index, counter, &self.key, event, reference))
    }

    /// `Engine._reset`: a success clears the key's window in every rule that resets on success.
    fn reset(&mut self, event: &EngineEvent<'_>) -> Result<(), BadAddress> {
        for &index in &self.resetting {
            let counter = &mut self.counters[index];
            if key_of(&counter.rule, event, &mut self.key)? {
                counter.windows.remove(&self.key);
            }
        }
        Ok(())
    }

    /// `Engine.sweep` for the native rules and the active bans. Python deletes where `until <= now`, so
    /// a NaN is kept: hence the negated comparisons.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn sweep(&mut self, now: f64) {
        self.next_sweep = now + self.sweep_interval;
        for counter in &mut self.counters {
            counter.windows.forget_older_than(now - counter.rule.window_secs);
            counter.quiet.retain(|_, until| !(*until <= now));
            counter.windows.enforce_cap(self.max_keys);
        }
        self.active.retain(|_, expires| !(*expires <= now));
    }

    /// `self._active[target] = max(self._active.get(target, 0.0), until)` in `Engine._decide`.
    pub fn ban(&mut self, target: &[u8], until: f64) {
        let current = self.active.get(target).copied().unwrap_or(0.0);
        // Python's max(a, b) returns a unless b > a.
        self.active.insert(target.into(), if until > current { until } else { current });
    }

    /// `self._active.pop(target, None)`: a recidive ban replacing a shorter one, or an operator's unban.
    pub fn lift(&mut self, target: &[u8]) {
        self.active.remove(target);
    }

    /// `rule.quiet[key] = until` in `Engine._decide` (an alert rule stays silent for its window).
    pub fn quiet(&mut self, rule: usize, key: &[u8], until: f64) -> bool {
        let Some(counter) = self.counters.get_mut(rule) else {
            return false;
        };
        counter.quiet.insert(key.into(), until);
        true
    }
}

/// `_passes_filters`.
fn passes_filters(rule: &Rule, event: &EngineEvent<'_>) -> bool {
    if let Some(users) = &rule.users {
        if !event.user.is_some_and(|user| users.contains(user)) {
            return false;
        }
    }
    if let Some(networks) = &rule.networks {
        if !event.ip.is_some_and(|ip| net::contains(networks, ip)) {
            return false;
        }
    }
    match &rule.outside {
        None => true,
        Some(outside) => event.ip.is_some_and(|ip| !net::contains(outside, ip)),
    }
}

/// The rule's key function (`Engine._key_function`) into `key`; false for "no key" (`None`).
fn key_of(rule: &Rule, event: &EngineEvent<'_>, key: &mut Vec<u8>) -> Result<bool, BadAddress> {
    key.clear();
    match rule.key_by {
        KeyBy::User => match event.user {
            Some(user) => key.extend_from_slice(user),
            None => return Ok(false),
        },
        KeyBy::IpUser => {
            let (Some(ip), Some(user)) = (event.ip, event.user) else {
                return Ok(false);
            };
            // Always the network text, even for /32 and /128: `f"{prefix_of(ip, v4, v6)} {event.user}"`.
            net::push_network(key, ip, rule.v4_prefix, rule.v6_prefix).ok_or(BadAddress)?;
            key.push(b' ');
            key.extend_from_slice(user);
        }
        KeyBy::Ip => {
            let Some(ip) = event.ip else {
                return Ok(false);
            };
            // `ip_key`: the version is chosen by a colon in the text; a full-length prefix keeps the text.
            let full = if ip.contains(&b':') { rule.v6_prefix >= 128 } else { rule.v4_prefix == 32 };
            if full {
                key.extend_from_slice(ip);
            } else {
                net::push_network(key, ip, rule.v4_prefix, rule.v6_prefix).ok_or(BadAddress)?;
            }
        }
    }
    Ok(true)
}

/// `Engine._count_window`: add the event to the key's window; a threshold when it holds `count`.
fn count_window(index: usize, counter: &mut Counter, key: &[u8], event: &EngineEvent<'_>, reference: f64) -> Option<Threshold> {
    let rule = &counter.rule;
    let extra = match rule.mode {
        Mode::Events => 0.0,
        Mode::Connections => event.pid.unwrap_or(-1.0),
        Mode::DistinctUsers => window::user_hash(event.user),
    };
    let entry = Entry { epoch: event.epoch, reference, extra };
    match counter.windows.get_mut(key) {
        None => counter.windows.insert(key, vec![entry]),
        Some(window) => {
            let last = window.last().map(|entry| entry.extra);
            if rule.mode == Mode::Connections && event.pid.is_some() && last == Some(extra) {
                return None; // another line of a connection that already counted
            }
            if rule.mode == Mode::DistinctUsers {
                window::forget_user(window, extra);
            }
            // One entry at a time: a million tracked keys with doubling capacity would cost a third more.
            window.reserve_exact(1);
            window.push(entry);
            window::trim(window, event.epoch - rule.window_secs);
        }
    }
    let window: &Window = counter.windows.get_mut(key)?;
    let reached = if rule.mode == Mode::DistinctUsers { window::distinct_extras(window) } else { window.len() };
    let count = (reached as i64).saturating_add(event.repeat).saturating_sub(1);
    if count < rule.count {
        return None;
    }
    let window = counter.windows.remove(key)?;
    let evidence = window
        .iter()
        .map(|entry| {
            let (position, source) = window::unpack(entry.reference);
            (entry.epoch, position, source)
        })
        .collect();
    Some(Threshold {
        rule: index, key: key.to_vec(), count, kind: event.kind, epoch: event.epoch, user: event.user.map(<[u8]>::to_vec),
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(mode: Mode, count: i64) -> Rule {
        Rule {
            kinds: 1, key_by: KeyBy::Ip, v4_prefix: 32, v6_prefix: 64, mode, count, window_secs: 600.0, bans: true,
            reset_on_success: false, users: None, networks: None, outside: None,
        }
    }

    fn event(epoch: f64, ip: &'static [u8], pid: Option<f64>) -> EngineEvent<'static> {
        EngineEvent { epoch, kind: 0, ip: Some(ip), user: Some(b"root"), pid, repeat: 1, source: 0, position: epoch as i64 }
    }

    #[test]
    fn a_window_reaching_its_count_stops_with_the_evidence() {
        let mut engine = Engine::new(vec![rule(Mode::Events, 3)], 4, 60.0, 100);
        assert_eq!(engine.feed(&event(1.0, b"192.0.2.1", None)), Ok(Step { swept: true, threshold: false }));
        assert_eq!(engine.feed(&event(2.0, b"192.0.2.1", None)), Ok(Step::default()));
        assert_eq!(engine.feed(&event(3.0, b"192.0.2.1", None)), Ok(Step { swept: false, threshold: true }));
        let threshold = engine.threshold().unwrap();
        assert_eq!((threshold.key.as_slice(), threshold.count), (&b"192.0.2.1"[..], 3));
        assert_eq!(threshold.evidence, vec![(1.0, 1, 0), (2.0, 2, 0), (3.0, 3, 0)]);
        engine.ban(b"192.0.2.1", 603.0);
        assert_eq!(engine.resume(), Ok(false));
        engine.feed(&event(4.0, b"192.0.2.1", None)).unwrap();
        assert_eq!(engine.stats().next(), Some((4, 1)));
    }

    #[test]
    fn connections_count_once_per_pid() {
        let mut engine = Engine::new(vec![rule(Mode::Connections, 2)], 4, 60.0, 100);
        engine.feed(&event(1.0, b"192.0.2.1", Some(7.0))).unwrap();
        assert!(!engine.feed(&event(2.0, b"192.0.2.1", Some(7.0))).unwrap().threshold);
        assert!(engine.feed(&event(3.0, b"192.0.2.1", Some(8.0))).unwrap().threshold);
    }

    #[test]
    fn an_address_ipaddress_refuses_is_an_error_only_where_a_prefix_is_needed() {
        let mut engine = Engine::new(vec![rule(Mode::Events, 3)], 4, 60.0, 100);
        assert!(engine.feed(&event(1.0, b"not-an-ip", None)).is_ok());
        let mut prefixed = rule(Mode::Events, 3);
        prefixed.v4_prefix = 24;
        let mut engine = Engine::new(vec![prefixed], 4, 60.0, 100);
        assert_eq!(engine.feed(&event(1.0, b"not-an-ip", None)), Err(BadAddress));
    }
}
