"""The native hot path: a Rust library (``native/`` in the source tree) that parses the common auth-log
lines a block at a time, behind the same results as the Python parser, which stays the reference.

Optional by design: without the library (no Rust toolchain when the package was built) everything runs
on the Python parser; :func:`~bastion_guard.native.library.load` says which path is in use and why.
"""

from bastion_guard.native.library import NativeLibrary, load
from bastion_guard.native.replay import choose_path, iter_results, replay_auto, replay_stream_native

__all__ = ["NativeLibrary", "choose_path", "iter_results", "load", "replay_auto", "replay_stream_native"]
