"""Compact per-key sliding windows: one ``array('d')`` of fixed-stride entries per tracked key.

A botnet spray puts a million addresses in flight, and each one's state must stay small (the target is
well under 300 bytes per address). A Python list of floats and ints costs about 130 bytes for a single
entry; an ``array('d')`` holding the same numbers inline costs 80. Every entry starts with the event
time and a *packed* evidence reference: ``position * 256 + source index`` as a double, exact for
positions below 2**45 (byte offsets of a 32 TiB file). Connection-counting rules add the sshd pid;
distinct-user rules add a 52-bit hash of the user name.
"""

from __future__ import annotations

from array import array
from typing import TypeAlias

from bastion_guard.decisions import Evidence

SOURCE_SLOTS = 256
_HASH_MASK = (1 << 52) - 1  # doubles hold integers up to 2**53 exactly

# array("d"): entries of `stride` doubles, oldest first (array is generic only for type checkers in 3.11)
Window: TypeAlias = "array[float]"


def new_window(entry: tuple[float, ...]) -> Window:
    """A window holding one entry."""
    return array("d", entry)


def pack(position: int, source: int) -> float:
    """An evidence reference as one double."""
    return float(position * SOURCE_SLOTS + source)


def user_hash(user: str | None) -> float:
    """A user name as a double, for telling names apart (collisions are astronomically unlikely)."""
    return float(hash(user or "") & _HASH_MASK)


def trim(window: Window, stride: int, cutoff: float) -> None:
    """Drop entries older than ``cutoff`` from the front (the newest entry is never older)."""
    while window[0] < cutoff:
        del window[:stride]


def evidence(window: Window, stride: int, source_names: list[str]) -> tuple[Evidence, ...]:
    """The lines a window holds, oldest first."""
    result = []
    for index in range(0, len(window), stride):
        position, source = divmod(int(window[index + 1]), SOURCE_SLOTS)
        result.append(Evidence(window[index], source_names[source], position))
    return tuple(result)


def distinct_values(window: Window, stride: int, column: int) -> int:
    """How many different values column ``column`` holds across the entries."""
    return len({window[index + column] for index in range(0, len(window), stride)})
