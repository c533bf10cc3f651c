//! The per-connection memory of `bastion_guard.parsing.context.ConnectionContext`, natively.
//!
//! Same contract, entry for entry: a map `(host, pid) -> (ip, port, epoch)` of at most `capacity`
//! entries; `remember` re-inserts at the young end and, when the map is full, forgets the oldest entry
//! in insertion order; `lookup` ignores entries more than 600 s older than the asking line. While the
//! native path is active this is the *only* context: the Python parser reaches it through ctypes for
//! the lines it handles, so both parsers see one history in line order.
//!
//! Host names are interned (a line's host is looked up without allocating); the table of names is
//! bounded too: when it is full, names no live entry uses are dropped.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

const MAX_AGE_SECS: f64 = 600.0;
const MAX_HOSTS: usize = 1 << 16;
/// The host id of a line without a host field (Python's `None`).
pub const NO_HOST: u64 = u64::MAX;

/// FxHash (as in rustc): keys here are small integers, hashed once per line; no crate, a few lines.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }
    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }
    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Fx = BuildHasherDefault<FxHasher>;

/// `(host id, pid)`.
pub type Key = (u64, i64);

struct Entry {
    ip: Vec<u8>,
    port: Option<i64>,
    epoch: f64,
    serial: u64,
}

pub struct Context {
    capacity: usize,
    entries: HashMap<Key, Entry, Fx>,
    // Insertion order as (serial, key); an item whose serial no longer matches its entry is stale
    // (the key was re-inserted or forgotten) and is skipped. Compacted when stale items pile up.
    order: VecDeque<(u64, Key)>,
    next_serial: u64,
    hosts: HashMap<Vec<u8>, u64, Fx>,
    // u64: at a million new names a second, 584,000 years before it could wrap
    next_host: u64,
}

impl Context {
    pub fn new(capacity: usize) -> Self {
        Context {
            capacity: capacity.max(1),
            entries: HashMap::default(),
            order: VecDeque::new(),
            next_serial: 0,
            hosts: HashMap::default(),
            next_host: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The id of `host` (`None`: no host field), interning it if new.
    pub fn host(&mut self, host: Option<&[u8]>) -> u64 {
        let Some(host) = host else {
            return NO_HOST;
        };
        if let Some(&id) = self.hosts.get(host) {
            return id;
        }
        if self.hosts.len() >= MAX_HOSTS {
            let live: std::collections::HashSet<u64> = self.entries.keys().map(|key| key.0).collect();
            self.hosts.retain(|_, id| live.contains(id));
        }
        let id = self.next_host;
        self.next_host += 1;
        self.hosts.insert(host.to_vec(), id);
        id
    }

    pub fn remember(&mut self, key: Key, ip: &[u8], port: Option<i64>, epoch: f64) {
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            self.order.push_back((serial, key));
            // Re-inserted at the young end: the new serial is its place in `order`.
            if !(port.is_none() && entry.ip == ip) {
                entry.port = port; // else pam_unix's rhost= (no port): keep the one sshd logged before
                entry.ip.clear();
                entry.ip.extend_from_slice(ip);
            }
            entry.epoch = epoch;
            entry.serial = serial;
        } else {
            if self.entries.len() >= self.capacity {
                self.evict_oldest(); // before this key's place is queued: it is not an entry yet
            }
            self.order.push_back((serial, key));
            self.entries.insert(key, Entry { ip: ip.to_vec(), port, epoch, serial });
        }
        if self.order.len() > 4 * self.capacity + 64 {
            self.compact();
        }
    }

    pub fn lookup(&self, key: &Key, epoch: f64) -> Option<(&[u8], Option<i64>)> {
        let entry = self.entries.get(key)?;
        if epoch - entry.epoch > MAX_AGE_SECS {
            return None;
        }
        Some((&entry.ip, entry.port))
    }

    pub fn forget(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    fn evict_oldest(&mut self) {
        while let Some((serial, key)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|entry| entry.serial == serial) {
                self.entries.remove(&key);
                return;
            }
        }
    }

    fn compact(&mut self) {
        let entries = &self.entries;
        self.order.retain(|(serial, key)| entries.get(key).is_some_and(|entry| entry.serial == *serial));
    }
}

#[cfg(test)]
mod tests {
    use super::{Context, NO_HOST};

    #[test]
    fn evicts_oldest_and_keeps_port() {
        let mut context = Context::new(2);
        context.remember((NO_HOST, 1), b"1.1.1.1", Some(22), 0.0);
        context.remember((NO_HOST, 2), b"2.2.2.2", Some(23), 0.0);
        context.remember((NO_HOST, 1), b"1.1.1.1", None, 1.0); // re-inserted young, port kept
        context.remember((NO_HOST, 3), b"3.3.3.3", None, 1.0); // evicts pid 2
        assert_eq!(context.lookup(&(NO_HOST, 1), 2.0), Some((&b"1.1.1.1"[..], Some(22))));
        assert_eq!(context.lookup(&(NO_HOST, 2), 2.0), None);
        assert_eq!(context.lookup(&(NO_HOST, 3), 700.0), None); // too old
    }

    #[test]
    fn hosts_are_told_apart() {
        let mut context = Context::new(8);
        let (a, b) = (context.host(Some(b"a")), context.host(Some(b"b")));
        assert_ne!(a, b);
        assert_eq!(context.host(Some(b"a")), a);
        assert_eq!(context.host(None), NO_HOST);
    }
}
