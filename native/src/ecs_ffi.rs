//! The `extern "C"` entry points of the ECS path (`ecs`), kept apart from the parser's in `lib.rs`.
//!
//! `bgn_ecs_index` answers a byte buffer this library allocates (`Buffer`): the caller reads
//! `bgn_buffer_data` for the length it was given, then frees the buffer with `bgn_buffer_free`, exactly
//! once. `bgn_ecs_lines` answers a pointer into a buffer of the calling thread, reused by its next call
//! (megabytes per call: a fresh one each time cost as much in page faults as hashing the ids). A null
//! result means "not here": a row or run the native path does not read exactly as Python does, bad
//! arguments, or a panic (caught). The caller then takes the Python path, the reference.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ecs::{self, Frame, Table};

/// The version of these entry points' signatures and buffer layouts; Python checks it before use.
pub const ECS_ABI_VERSION: i64 = 1;

/// Bytes allocated here, handed to the caller.
pub struct Buffer(Vec<u8>);

thread_local! {
    /// The NDJSON of this thread's last `bgn_ecs_lines` call.
    static LINES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[no_mangle]
pub extern "C" fn bgn_ecs_abi_version() -> i64 {
    ECS_ABI_VERSION
}

/// Box `bytes` for the caller and store their length in `length_out`.
///
/// # Safety
/// `length_out` must point to one writable usize.
unsafe fn hand_over(bytes: Vec<u8>, length_out: *mut usize) -> *mut Buffer {
    // SAFETY: as the caller guarantees above (checked not null by every entry point).
    unsafe { *length_out = bytes.len() };
    Box::into_raw(Box::new(Buffer(bytes)))
}

/// Check a stored batch row (`row_length` bytes) against the kinds and outcomes of `table` (see
/// `ecs::Table`) and index it. The buffer holds `count`, then `count + 1` event starts (byte offsets in
/// `row`, the last one the end of the last event), each a little-endian u64, then the bastion's UTF-8.
///
/// # Safety
/// `row` and `table` point to `row_length` and `table_length` readable bytes, unchanged during the
/// call; `length_out` to one writable usize.
#[no_mangle]
pub unsafe extern "C" fn bgn_ecs_index(
    row: *const u8, row_length: usize, table: *const u8, table_length: usize, length_out: *mut usize,
) -> *mut Buffer {
    catch_unwind(AssertUnwindSafe(|| {
        if length_out.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded from the caller, see above.
        let (Some(row), Some(table)) = (unsafe { crate::bytes(row, row_length) }, unsafe { crate::bytes(table, table_length) })
        else {
            return std::ptr::null_mut();
        };
        let Ok(table) = Table::parse(table) else {
            return std::ptr::null_mut();
        };
        let Ok(found) = ecs::index(row, &table) else {
            return std::ptr::null_mut();
        };
        let count = found.starts.len() - 1;
        let mut out = Vec::with_capacity(8 * (count + 2) + found.bastion.len());
        out.extend_from_slice(&(count as u64).to_le_bytes());
        for start in &found.starts {
            out.extend_from_slice(&(*start as u64).to_le_bytes());
        }
        out.extend_from_slice(found.bastion.as_bytes());
        // SAFETY: length_out is not null, and the caller guarantees it is writable.
        unsafe { hand_over(out, length_out) }
    }))
    .unwrap_or(std::ptr::null_mut())
}

/// The bulk NDJSON of `count` events: `events` (`events_length` bytes) is a row's text from one event
/// start `bgn_ecs_index` reported to another, `bastion` the row's bastion (UTF-8), `table` as for
/// `bgn_ecs_index` and `frame` the pieces of one namespace and bastion (see `ecs::Frame`). Answers the
/// first byte and stores the length in `length_out`; the bytes stay valid until this thread calls again.
///
/// # Safety
/// Every pointer with a length points to that many readable bytes, unchanged during the call;
/// `length_out` to one writable usize. The answer is read before this thread's next call.
#[no_mangle]
pub unsafe extern "C" fn bgn_ecs_lines(
    events: *const u8, events_length: usize, count: usize, bastion: *const u8, bastion_length: usize,
    table: *const u8, table_length: usize, frame: *const u8, frame_length: usize, length_out: *mut usize,
) -> *const u8 {
    catch_unwind(AssertUnwindSafe(|| {
        if length_out.is_null() {
            return std::ptr::null();
        }
        // SAFETY: forwarded from the caller, see above.
        let inputs = unsafe {
            (
                crate::bytes(events, events_length),
                crate::bytes(bastion, bastion_length),
                crate::bytes(table, table_length),
                crate::bytes(frame, frame_length),
            )
        };
        let (Some(events), Some(bastion), Some(table), Some(frame)) = inputs else {
            return std::ptr::null();
        };
        let (Ok(bastion), Ok(table), Ok(frame)) = (std::str::from_utf8(bastion), Table::parse(table), Frame::parse(frame))
        else {
            return std::ptr::null();
        };
        LINES.with_borrow_mut(|out| match ecs::lines(out, events, count, bastion, &table, &frame) {
            Ok(()) => {
                // SAFETY: length_out is not null, and the caller guarantees it is writable.
                unsafe { *length_out = out.len() };
                out.as_ptr()
            }
            Err(_) => std::ptr::null(),
        })
    }))
    .unwrap_or(std::ptr::null())
}

/// The first byte of a buffer (null for a null buffer).
///
/// # Safety
/// `buffer` must be null or come from this module and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn bgn_buffer_data(buffer: *const Buffer) -> *const u8 {
    // SAFETY: as the caller guarantees above.
    match unsafe { buffer.as_ref() } {
        Some(buffer) => buffer.0.as_ptr(),
        None => std::ptr::null(),
    }
}

/// Free a buffer; null is ignored.
///
/// # Safety
/// `buffer` must be null or come from this module, and is invalid afterwards (freed exactly once).
#[no_mangle]
pub unsafe extern "C" fn bgn_buffer_free(buffer: *mut Buffer) {
    if !buffer.is_null() {
        // SAFETY: the pointer came from Box::into_raw in hand_over and is freed exactly once.
        drop(unsafe { Box::from_raw(buffer) });
    }
}
