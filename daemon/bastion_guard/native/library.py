"""Finding and loading the native library (``native/`` in the source tree, built by setuptools-rust).

The library is optional: when it was not built (no Rust toolchain at install time), fails to load, or
reports another ABI than this module was written for, :func:`load` returns ``None`` with the reason and
everything runs on the pure-Python parser, the reference. ``BASTION_GUARD_NATIVE=0`` turns it off;
``BASTION_GUARD_NATIVE_LIB=/path/to/lib.so`` loads a specific build (the tests use it to load a
``cargo build`` result).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import os
from dataclasses import dataclass
from pathlib import Path

from bastion_guard.events import Kind

# Must equal ABI_VERSION in native/src/lib.rs; the record layout is documented in native/src/records.rs.
ABI_VERSION = 2
RECORD_FIELDS = 27

_c_i64 = ctypes.c_int64
_c_size = ctypes.c_size_t
_c_ptr = ctypes.c_void_p
_c_bytes = ctypes.c_char_p
_c_i32 = ctypes.c_int32
_c_f64 = ctypes.c_double


@dataclass(frozen=True)
class NativeLibrary:
    """The loaded library and the kind of each record code it writes."""

    dll: ctypes.CDLL
    path: Path
    kinds: tuple[Kind, ...]


def _candidates() -> list[Path]:
    override = os.environ.get("BASTION_GUARD_NATIVE_LIB")
    if override:
        return [Path(override)]
    package = Path(__file__).resolve().parent.parent
    return [package / f"_native{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]


def _declare(dll: ctypes.CDLL) -> None:
    """Argument and result types of every entry point (see native/src/lib.rs)."""
    signatures: dict[str, tuple[list[type], type | None]] = {
        "bgn_abi_version": ([], _c_i64),
        "bgn_record_fields": ([], _c_i64),
        "bgn_kind_names": ([_c_ptr, _c_size], _c_i64),
        "bgn_context_new": ([_c_i64], _c_ptr),
        "bgn_context_free": ([_c_ptr], None),
        "bgn_context_remember": (
            [_c_ptr, _c_bytes, _c_size, _c_i32, _c_i64, _c_bytes, _c_size, _c_i64, _c_f64], _c_i64
        ),
        "bgn_context_lookup": (
            [_c_ptr, _c_bytes, _c_size, _c_i32, _c_i64, _c_f64, _c_ptr, _c_size, _c_ptr], _c_i64
        ),
        "bgn_context_forget": ([_c_ptr, _c_bytes, _c_size, _c_i32, _c_i64], _c_i64),
        "bgn_context_len": ([_c_ptr], _c_i64),
        "bgn_parse": (
            [
                _c_ptr, _c_bytes, _c_size, _c_size, _c_ptr, _c_size, _c_ptr, _c_size, _c_bytes, _c_size, _c_i32,
                _c_f64, _c_f64, _c_ptr, _c_size, _c_ptr,
            ],
            _c_i64,
        ),
    }
    for name, (arguments, result) in signatures.items():
        function = getattr(dll, name)
        function.argtypes = arguments
        function.restype = result


def _open(path: Path) -> NativeLibrary:
    dll = ctypes.CDLL(str(path))
    _declare(dll)
    if dll.bgn_abi_version() != ABI_VERSION or dll.bgn_record_fields() != RECORD_FIELDS:
        raise OSError(f"ABI {dll.bgn_abi_version()}, expected {ABI_VERSION}")
    names = ctypes.create_string_buffer(4096)
    length = dll.bgn_kind_names(names, len(names))
    if length < 0:
        raise OSError("kind table does not fit")
    values = {kind.value: kind for kind in Kind}
    kinds = []
    for name in names.raw[:length].decode("ascii").split(","):
        if name not in values:
            raise OSError(f"unknown event kind {name!r}")
        kinds.append(values[name])
    return NativeLibrary(dll, path, tuple(kinds))


@functools.cache
def load() -> tuple[NativeLibrary | None, str]:
    """The library (once per process) and a one-line description: where it came from, or why not."""
    return _load()


def _load() -> tuple[NativeLibrary | None, str]:
    if os.environ.get("BASTION_GUARD_NATIVE", "1") == "0":
        return None, "disabled by BASTION_GUARD_NATIVE=0"
    problems = []
    for path in _candidates():
        if not path.is_file():
            continue
        try:
            library = _open(path)
        except (OSError, AttributeError) as error:
            problems.append(f"{path.name}: {error}")
            continue
        return library, f"native ({path.name})"
    if problems:
        return None, "native library unusable: " + "; ".join(problems)
    return None, "native library not built"
