//! bastion-guard's native hot path: the RFC 3339 envelope and the hot sshd/PAM message shapes, parsed a
//! chunk of log at a time behind a C ABI that Python loads with ctypes.
//!
//! The Python parser (`bastion_guard.parsing`) is the reference; this library handles only lines whose
//! result it can show to be the reference's, and reports every other line back so that Python parses
//! it, in order, against the same connection context (owned here, reached from Python through
//! `bgn_context_*`). Std only, no crates. `unsafe` appears only in the `extern "C"` functions below, to
//! turn the caller's pointers into slices and references; each use states what the caller guarantees.
//! Every entry point runs under `catch_unwind`, so a panic becomes an error code, never an unwind into
//! the interpreter.

pub mod addr;
pub mod blake2b;
pub mod context;
pub mod ecs;
pub mod ecs_ffi; // the ECS path's own extern "C" entry points (and their `unsafe`)
pub mod engine;
pub mod engine_ffi;
pub mod envelope;
pub mod json;
pub mod kinds;
pub mod line;
pub mod net;
pub mod pyfmt;
pub mod records;
pub mod rulebook;
pub mod sshd;
pub mod text;
pub mod window;

use std::panic::{catch_unwind, AssertUnwindSafe};

use context::Context;

/// Bumped whenever a signature or the record layout changes; Python checks it before use.
pub const ABI_VERSION: i64 = 2;

pub const ERROR: i64 = -1;

#[no_mangle]
pub extern "C" fn bgn_abi_version() -> i64 {
    ABI_VERSION
}

/// Numbers of 64-bit fields per record (see `records`).
#[no_mangle]
pub extern "C" fn bgn_record_fields() -> i64 {
    records::FIELDS as i64
}

/// Writes the kind names, comma-separated, into `out`; returns their length, or -1 if `cap` is too small.
///
/// # Safety
/// `out` must point to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bgn_kind_names(out: *mut u8, cap: usize) -> i64 {
    let names = kinds::NAMES.join(",");
    if out.is_null() || names.len() > cap {
        return ERROR;
    }
    // SAFETY: the caller guarantees `out` points to `cap` writable bytes, and names.len() <= cap.
    let out = unsafe { std::slice::from_raw_parts_mut(out, cap) };
    out[..names.len()].copy_from_slice(names.as_bytes());
    names.len() as i64
}

#[no_mangle]
pub extern "C" fn bgn_context_new(capacity: i64) -> *mut Context {
    match catch_unwind(|| Box::into_raw(Box::new(Context::new(capacity.max(1) as usize)))) {
        Ok(pointer) => pointer,
        Err(_) => std::ptr::null_mut(),
    }
}

/// # Safety
/// `context` must come from `bgn_context_new` and not have been freed; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn bgn_context_free(context: *mut Context) {
    if !context.is_null() {
        // SAFETY: the pointer came from Box::into_raw in bgn_context_new and is freed exactly once.
        drop(unsafe { Box::from_raw(context) });
    }
}

/// The context behind a pointer, for one call.
///
/// # Safety
/// `context` must be null or come from `bgn_context_new`, not freed, and not used by another call at the
/// same time (the Python side holds one context per parser and calls it from one thread).
unsafe fn context_mut<'a>(context: *mut Context) -> Option<&'a mut Context> {
    // SAFETY: as the caller guarantees above.
    unsafe { context.as_mut() }
}

/// Bytes the caller passed, as a slice (an empty slice for a null pointer with length 0).
///
/// # Safety
/// `data` must point to `length` readable bytes that stay unchanged during the call.
unsafe fn bytes<'a>(data: *const u8, length: usize) -> Option<&'a [u8]> {
    if data.is_null() {
        return if length == 0 { Some(&[]) } else { None };
    }
    // SAFETY: as the caller guarantees above.
    Some(unsafe { std::slice::from_raw_parts(data, length) })
}

/// The context key of Python's `(host, pid)`: `has_host == 0` is `host is None`.
///
/// # Safety
/// As for `bytes`.
unsafe fn key(
    context: &mut Context, host: *const u8, host_length: usize, has_host: i32, pid: i64,
) -> Option<context::Key> {
    let host = if has_host != 0 {
        // SAFETY: forwarded from the caller.
        Some(unsafe { bytes(host, host_length) }?)
    } else {
        None
    };
    Some((context.host(host), pid))
}

/// `ConnectionContext.remember`; `port == -1` is `None` (other values, -2 included, are stored as given). Returns 0, or -1 on bad arguments.
///
/// # Safety
/// `context` as for `context_mut`; `host`/`ip` point to `host_length`/`ip_length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bgn_context_remember(
    context: *mut Context, host: *const u8, host_length: usize, has_host: i32, pid: i64, ip: *const u8,
    ip_length: usize, port: i64, epoch: f64,
) -> i64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from the caller, see above.
        let Some(context) = (unsafe { context_mut(context) }) else {
            return ERROR;
        };
        // SAFETY: forwarded from the caller, see above.
        let (Some(key), Some(ip)) = (unsafe { key(context, host, host_length, has_host, pid) }, unsafe { bytes(ip, ip_length) })
        else {
            return ERROR;
        };
        context.remember(key, ip, (port != -1).then_some(port), epoch);
        0
    }))
    .unwrap_or(ERROR)
}

/// `ConnectionContext.lookup`: writes the address into `out` and the port (-1: `None`) into `port_out`;
/// returns the address length, -2 when there is no entry, -1 on bad arguments.
///
/// # Safety
/// As for `bgn_context_remember`; `out` points to `out_cap` writable bytes, `port_out` to one i64.
#[no_mangle]
pub unsafe extern "C" fn bgn_context_lookup(
    context: *mut Context, host: *const u8, host_length: usize, has_host: i32, pid: i64, epoch: f64,
    out: *mut u8, out_cap: usize, port_out: *mut i64,
) -> i64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from the caller, see above.
        let Some(context) = (unsafe { context_mut(context) }) else {
            return ERROR;
        };
        // SAFETY: forwarded from the caller, see above.
        let Some(key) = (unsafe { key(context, host, host_length, has_host, pid) }) else {
            return ERROR;
        };
        if out.is_null() || port_out.is_null() {
            return ERROR;
        }
        let Some((ip, port)) = context.lookup(&key, epoch) else {
            return -2;
        };
        if ip.len() > out_cap {
            return ERROR;
        }
        // SAFETY: the caller guarantees `out_cap` writable bytes at `out` and one i64 at `port_out`.
        unsafe {
            std::slice::from_raw_parts_mut(out, out_cap)[..ip.len()].copy_from_slice(ip);
            *port_out = port.unwrap_or(-1);
        }
        ip.len() as i64
    }))
    .unwrap_or(ERROR)
}

/// `ConnectionContext.forget`. Returns 0, or -1 on bad arguments.
///
/// # Safety
/// As for `bgn_context_remember`.
#[no_mangle]
pub unsafe extern "C" fn bgn_context_forget(
    context: *mut Context, host: *const u8, host_length: usize, has_host: i32, pid: i64,
) -> i64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from the caller, see above.
        let Some(context) = (unsafe { context_mut(context) }) else {
            return ERROR;
        };
        // SAFETY: forwarded from the caller, see above.
        let Some(key) = (unsafe { key(context, host, host_length, has_host, pid) }) else {
            return ERROR;
        };
        context.forget(&key);
        0
    }))
    .unwrap_or(ERROR)
}

/// `len(ConnectionContext)`, or -1 for a null context.
///
/// # Safety
/// As for `context_mut`.
#[no_mangle]
pub unsafe extern "C" fn bgn_context_len(context: *mut Context) -> i64 {
    // SAFETY: forwarded from the caller.
    match unsafe { context_mut(context) } {
        Some(context) => context.len() as i64,
        None => ERROR,
    }
}

/// Parse the lines of `data` (complete lines separated by `\n`, the last one without it) from byte
/// `start`, writing records into `records` (`record_cap` records of `bgn_record_fields()` i64s), derived
/// strings into `arena`, and per-code line counts into `counts` (`records::COUNT_SLOTS` i64s, added
/// to). `counted` (`counted_length` bytes, one per kind code) and `all_lines` choose the records, and
/// `next_sweep` / `sweep_interval` give the engine's sweep clock (see `records`). Stops after the first
/// line Python must parse, when the buffers are full, or at the end. Writes `[next start, records
/// written, arena bytes used, lines done]` into `result` and returns 0, or -1 on bad arguments or an
/// internal error (a panic).
///
/// # Safety
/// `context` as for `context_mut`; `data` points to `length` readable bytes and `counted` to
/// `counted_length`; `records` to `record_cap * bgn_record_fields()` writable i64s; `arena` to
/// `arena_cap` writable bytes; `counts` to `counts_length` writable i64s; `result` to 4 writable i64s.
/// The writable regions overlap nothing else.
#[no_mangle]
pub unsafe extern "C" fn bgn_parse(
    context: *mut Context, data: *const u8, length: usize, start: usize, records: *mut i64, record_cap: usize,
    arena: *mut u8, arena_cap: usize, counted: *const u8, counted_length: usize, all_lines: i32, next_sweep: f64,
    sweep_interval: f64, counts: *mut i64, counts_length: usize, result: *mut i64,
) -> i64 {
    catch_unwind(AssertUnwindSafe(|| {
        if records.is_null() || arena.is_null() || result.is_null() || counts.is_null() {
            return ERROR;
        }
        // SAFETY: forwarded from the caller, see above.
        let (Some(context), Some(data), Some(counted)) = (
            unsafe { context_mut(context) },
            unsafe { bytes(data, length) },
            unsafe { bytes(counted, counted_length) },
        ) else {
            return ERROR;
        };
        let Some(record_words) = record_cap.checked_mul(records::FIELDS) else {
            return ERROR;
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
        let options = records::Options { counted, all_lines: all_lines != 0, next_sweep, sweep_interval };
        let Some(done) = records::parse_chunk(context, data, start, records, arena, &options, counts) else {
            return ERROR;
        };
        result.copy_from_slice(&[done.next as i64, done.records as i64, done.arena as i64, done.lines as i64]);
        0
    }))
    .unwrap_or(ERROR)
}
