"""Small helpers shared by the ``bastionctl`` subcommands."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@contextmanager
def open_log(path: str) -> Iterator[tuple[BinaryIO, float, str]]:
    """Open ``path`` (``-`` for standard input) as bytes; also give the year-inference reference and a name.

    The reference is the file's modification time: no line of a finished file is newer than that.
    """
    if path == "-":
        yield sys.stdin.buffer, time.time(), "<stdin>"
        return
    file_path = Path(path)
    with file_path.open("rb") as stream:
        yield stream, os.fstat(stream.fileno()).st_mtime, str(file_path)


def fail(message: str, code: int = EXIT_FAILURE) -> int:
    """Print ``bastionctl: message`` on stderr and return ``code``."""
    print(f"bastionctl: {message}", file=sys.stderr)
    return code
