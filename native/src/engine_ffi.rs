//! The C ABI of the counting engine (`engine`), loaded by `bastion_guard/native/engine.py`.
//!
//! Same conventions as `lib.rs`: `unsafe` only to turn the caller's pointers into slices and references,
//! each use with what the caller guarantees; every entry point under `catch_unwind`. Results: `ERROR`
//! (-1) for bad arguments or a panic, `BAD_ADDRESS` (-3) where Python's `ipaddress` would have raised.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::engine::{BadAddress, Engine, EngineEvent};
use crate::records::{self, Counting, Options};
use crate::{bytes, context_mut, rulebook, ERROR};

pub const BAD_ADDRESS: i64 = -3;
const THRESHOLD_INFO: usize = 7;

/// The engine behind a pointer, for one call.
///
/// # Safety
/// `engine` must be null or come from `bgn_engine_new`, not freed, and not used by another call at the
/// same time (Python holds one engine per replay, used from one thread).
unsafe fn engine_mut<'a>(engine: *mut Engine) -> Option<&'a mut Engine> {
    // SAFETY: as the caller guarantees above.
    unsafe { engine.as_mut() }
}

/// Optional bytes: `present == 0` is Python's `None`.
///
/// # Safety
/// As for `bytes`.
unsafe fn optional<'a>(data: *const u8, length: usize, present: i32) -> Option<Option<&'a [u8]>> {
    if present == 0 {
        return Some(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { bytes(data, length) }.map(Some)
}

fn run(body: impl FnOnce() -> Result<i64, BadAddress>) -> i64 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(BadAddress)) => BAD_ADDRESS,
        Err(_) => ERROR,
    }
}

/// A new engine for the rules of `description` (format: `rulebook`), or null if it is malformed.
/// `auth_success` is the kind code of successful logins (reset on success), `sweep_interval` is
/// `SWEEP_INTERVAL_SECS`, `max_keys` the cap of windows per rule.
///
/// # Safety
/// `description` points to `length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_new(
    description: *const u8, length: usize, auth_success: i64, sweep_interval: f64, max_keys: i64,
) -> *mut Engine {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from the caller.
        let Some(rules) = (unsafe { bytes(description, length) }).and_then(rulebook::read) else {
            return std::ptr::null_mut();
        };
        let (Ok(auth_success), Ok(max_keys)) = (u32::try_from(auth_success), usize::try_from(max_keys)) else {
            return std::ptr::null_mut();
        };
        Box::into_raw(Box::new(Engine::new(rules, auth_success, sweep_interval, max_keys)))
    }))
    .unwrap_or(std::ptr::null_mut())
}

/// # Safety
/// `engine` must come from `bgn_engine_new` and not have been freed; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_free(engine: *mut Engine) {
    if !engine.is_null() {
        // SAFETY: the pointer came from Box::into_raw in bgn_engine_new and is freed exactly once.
        drop(unsafe { Box::from_raw(engine) });
    }
}

/// `Engine.feed` for an event Python parsed. Returns 1 if a threshold waits (+2 if the engine swept),
/// `ERROR`, or `BAD_ADDRESS`.
///
/// # Safety
/// `engine` as for `engine_mut`; `ip` / `user` point to `ip_length` / `user_length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_feed(
    engine: *mut Engine, kind: i64, epoch: f64, ip: *const u8, ip_length: usize, has_ip: i32, user: *const u8,
    user_length: usize, has_user: i32, has_pid: i32, pid: f64, repeat: i64, source: i64, position: i64,
) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller, see above.
        let fields = unsafe {
            (engine_mut(engine), optional(ip, ip_length, has_ip), optional(user, user_length, has_user))
        };
        let (Some(engine), Some(ip), Some(user)) = fields else {
            return Ok(ERROR);
        };
        let Ok(kind) = u32::try_from(kind) else {
            return Ok(ERROR);
        };
        let pid = (has_pid != 0).then_some(pid);
        let step = engine.feed(&EngineEvent { epoch, kind, ip, user, pid, repeat, source, position })?;
        Ok(i64::from(step.threshold) + 2 * i64::from(step.swept))
    })
}

/// Go on with the event that stopped at a threshold: 1 if another threshold waits, else 0.
///
/// # Safety
/// As for `engine_mut`.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_resume(engine: *mut Engine) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let Some(engine) = (unsafe { engine_mut(engine) }) else {
            return Ok(ERROR);
        };
        Ok(i64::from(engine.resume()?))
    })
}

/// The waiting threshold: writes `[rule, kind, count, key length, user length (-1: none), evidence
/// entries, epoch bits]` into `info`, and, if they fit, the key, the user and the evidence (epoch,
/// position, source as doubles per entry). Returns 0 when everything was written, 1 when a buffer is too
/// small (only `info` written: grow and ask again), -1 with no threshold or bad arguments.
///
/// # Safety
/// `engine` as for `engine_mut`; `info` points to 7 writable i64s, `key_out` / `user_out` to `key_cap` /
/// `user_cap` writable bytes, `evidence_out` to `evidence_cap * 3` writable doubles; none overlap.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_threshold(
    engine: *mut Engine, info: *mut i64, key_out: *mut u8, key_cap: usize, user_out: *mut u8, user_cap: usize,
    evidence_out: *mut f64, evidence_cap: usize,
) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let Some(engine) = (unsafe { engine_mut(engine) }) else {
            return Ok(ERROR);
        };
        let Some(threshold) = engine.threshold() else {
            return Ok(ERROR);
        };
        if info.is_null() || key_out.is_null() || user_out.is_null() || evidence_out.is_null() {
            return Ok(ERROR);
        }
        let user_length = threshold.user.as_ref().map_or(-1, |user| user.len() as i64);
        // SAFETY: the caller guarantees 7 writable i64s at `info`.
        let info = unsafe { std::slice::from_raw_parts_mut(info, THRESHOLD_INFO) };
        info.copy_from_slice(&[
            threshold.rule as i64, i64::from(threshold.kind), threshold.count, threshold.key.len() as i64, user_length,
            threshold.evidence.len() as i64, threshold.epoch.to_bits() as i64,
        ]);
        let user = threshold.user.as_deref().unwrap_or(b"");
        if threshold.key.len() > key_cap || user.len() > user_cap || threshold.evidence.len() > evidence_cap {
            return Ok(1);
        }
        // Three doubles per entry; a capacity whose product overflows cannot describe real memory.
        let Some(evidence_slots) = evidence_cap.checked_mul(3) else { return Ok(ERROR) };
        // SAFETY: the caller guarantees these sizes of writable, non-overlapping memory.
        let (key_out, user_out, evidence_out) = unsafe {
            (
                std::slice::from_raw_parts_mut(key_out, key_cap),
                std::slice::from_raw_parts_mut(user_out, user_cap),
                std::slice::from_raw_parts_mut(evidence_out, evidence_slots),
            )
        };
        key_out[..threshold.key.len()].copy_from_slice(&threshold.key);
        user_out[..user.len()].copy_from_slice(user);
        for (slot, &(epoch, position, source)) in evidence_out.chunks_exact_mut(3).zip(&threshold.evidence) {
            slot.copy_from_slice(&[epoch, position as f64, source as f64]);
        }
        Ok(0)
    })
}

/// A ban Python decided: the target is silenced for ban rules until `until` (or later, if it was).
///
/// # Safety
/// `engine` as for `engine_mut`; `target` points to `length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_ban(engine: *mut Engine, target: *const u8, length: usize, until: f64) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let (Some(engine), Some(target)) = (unsafe { engine_mut(engine) }, unsafe { bytes(target, length) }) else {
            return Ok(ERROR);
        };
        engine.ban(target, until);
        Ok(0)
    })
}

/// The target's ban is lifted (a recidive ban replaces it, or an operator unbanned it).
///
/// # Safety
/// As for `bgn_engine_ban`.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_lift(engine: *mut Engine, target: *const u8, length: usize) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let (Some(engine), Some(target)) = (unsafe { engine_mut(engine) }, unsafe { bytes(target, length) }) else {
            return Ok(ERROR);
        };
        engine.lift(target);
        Ok(0)
    })
}

/// An alert Python decided: rule `rule` (its index in the description) stays silent for `key` until `until`.
///
/// # Safety
/// As for `bgn_engine_ban`.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_quiet(
    engine: *mut Engine, rule: i64, key: *const u8, length: usize, until: f64,
) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let (Some(engine), Some(key), Ok(rule)) =
            (unsafe { engine_mut(engine) }, unsafe { bytes(key, length) }, usize::try_from(rule))
        else {
            return Ok(ERROR);
        };
        Ok(if engine.quiet(rule, key, until) { 0 } else { ERROR })
    })
}

/// `Engine.sweep(now)` for the native rules and the active bans.
///
/// # Safety
/// As for `engine_mut`.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_sweep(engine: *mut Engine, now: f64) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let Some(engine) = (unsafe { engine_mut(engine) }) else {
            return Ok(ERROR);
        };
        engine.sweep(now);
        Ok(0)
    })
}

/// `Engine.next_sweep` (NaN for a null engine).
///
/// # Safety
/// As for `engine_mut`.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_next_sweep(engine: *mut Engine) -> f64 {
    // SAFETY: forwarded from the caller.
    unsafe { engine_mut(engine) }.map_or(f64::NAN, |engine| engine.next_sweep())
}

/// Writes `events, while_banned` per rule into `out` if `2 * rules <= cap`; returns the number of rules.
///
/// # Safety
/// `engine` as for `engine_mut`; `out` points to `cap` writable i64s.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_stats(engine: *mut Engine, out: *mut i64, cap: usize) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let Some(engine) = (unsafe { engine_mut(engine) }) else {
            return Ok(ERROR);
        };
        let stats: Vec<(i64, i64)> = engine.stats().collect();
        if !out.is_null() && stats.len() * 2 <= cap {
            // SAFETY: the caller guarantees `cap` writable i64s at `out`.
            let out = unsafe { std::slice::from_raw_parts_mut(out, cap) };
            for (slot, (events, while_banned)) in out.chunks_exact_mut(2).zip(&stats) {
                slot.copy_from_slice(&[*events, *while_banned]);
            }
        }
        Ok(stats.len() as i64)
    })
}

/// How many keys the native rules count right now.
///
/// # Safety
/// As for `engine_mut`.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_tracked_keys(engine: *mut Engine) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { engine_mut(engine) }.map_or(ERROR, |engine| engine.tracked_keys() as i64)
}

/// The active bans as `[u32 length][target][f64 expiry]` (little-endian) repeated, written into `out`
/// if they fit in `cap` bytes; returns the bytes they take.
///
/// # Safety
/// `engine` as for `engine_mut`; `out` points to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bgn_engine_active(engine: *mut Engine, out: *mut u8, cap: usize) -> i64 {
    run(|| {
        // SAFETY: forwarded from the caller.
        let Some(engine) = (unsafe { engine_mut(engine) }) else {
            return Ok(ERROR);
        };
        let mut packed = Vec::new();
        for (target, until) in engine.active() {
            packed.extend_from_slice(&(target.len() as u32).to_le_bytes());
            packed.extend_from_slice(target);
            packed.extend_from_slice(&until.to_le_bytes());
        }
        if !out.is_null() && packed.len() <= cap {
            // SAFETY: the caller guarantees `cap` writable bytes at `out`.
            let out = unsafe { std::slice::from_raw_parts_mut(out, cap) };
            out[..packed.len()].copy_from_slice(&packed);
        }
        Ok(packed.len() as i64)
    })
}

/// `bgn_parse` with every event counted by `engine` (`records::parse_chunk_counting`): the records are
/// the lines Python must parse, `SWEEP` markers when `python_sweeps`, and `THRESHOLD`. `source` is the
/// engine's index of the chunk's source and `base` the line number before `start`. Returns 0, `ERROR`
/// or `BAD_ADDRESS`; `result` as for `bgn_parse`.
///
/// # Safety
/// As for `bgn_parse`, and `engine` as for `engine_mut`.
#[no_mangle]
pub unsafe extern "C" fn bgn_parse_counting(
    context: *mut crate::context::Context, engine: *mut Engine, data: *const u8, length: usize, start: usize,
    records: *mut i64, record_cap: usize, arena: *mut u8, arena_cap: usize, counts: *mut i64, counts_length: usize,
    source: i64, base: i64, python_sweeps: i32, result: *mut i64,
) -> i64 {
    run(|| {
        // Checked here so that a refusal below can only be an address (see `parse_chunk_counting`).
        if records.is_null() || arena.is_null() || result.is_null() || counts.is_null()
            || start > length.saturating_add(1) || counts_length < records::COUNT_SLOTS
        {
            return Ok(ERROR);
        }
        // SAFETY: forwarded from the caller, see above.
        let pointers = unsafe { (context_mut(context), engine_mut(engine), bytes(data, length)) };
        let (Some(context), Some(engine), Some(data)) = pointers else {
            return Ok(ERROR);
        };
        let Some(record_words) = record_cap.checked_mul(records::FIELDS) else {
            return Ok(ERROR);
        };
        // SAFETY: the caller guarantees these sizes of writable, non-overlapping memory.
        let (records, arena, counts, result) = unsafe {
            (
                std::slice::from_raw_parts_mut(records, record_words),
                std::slice::from_raw_parts_mut(arena, arena_cap),
                std::slice::from_raw_parts_mut(counts, counts_length),
                std::slice::from_raw_parts_mut(result, 4),
            )
        };
        let options = Options { counted: &[], all_lines: false, next_sweep: f64::INFINITY, sweep_interval: 0.0 };
        let counting = Counting { engine, source, base, python_sweeps: python_sweeps != 0 };
        let done = records::parse_chunk_counting(context, data, start, records, arena, &options, counts, Some(counting))
            .ok_or(BadAddress)?;
        result.copy_from_slice(&[done.next as i64, done.records as i64, done.arena as i64, done.lines as i64]);
        Ok(0)
    })
}
