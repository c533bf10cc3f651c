"""A real bastiond process on a temporary layout, and bastionctl against it: shared by the integration tests
that run the daemon as users do (dry-run firewall, so no root) and talk to it only through its files, its
control socket and its signals.

The layout under ``root``: ``auth.log`` (the followed log), ``rules/``, ``state/``, ``run/bastiond.sock``
and ``bastiond.yaml``. The daemon's output goes to a file, not a pipe, so a chatty daemon that nobody
reads can never block on a full pipe; the file sits in a directory of its own because the daemon watches
the directory of the log it follows (with ``-v`` it would log every write to its own output, see it, and
log again). No pytest here: failures are assertions with the daemon's output. (``netns.Bastiond`` is the
benchmarks' variant: real nftables, stderr lines timestamped as they arrive.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from realparts import stop_process, wait_until

START_TIMEOUT = 20.0  # seconds for the control socket to answer; this machine is shared
STOP_TIMEOUT = 30.0  # seconds for a clean exit after SIGTERM (the sink process stops with it)


def failed_password(user: str, address: str, *, pid: int, port: int, invalid: bool = False) -> str:
    """One sshd "Failed password" line, stamped now, as the daemon's file source reads it."""
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    who = f"invalid user {user}" if invalid else user
    return f"{stamp} bastion sshd[{pid}]: Failed password for {who} from {address} port {port} ssh2\n"


class BastiondProcess:
    """One bastiond process (started and stopped as often as a test likes) and bastionctl against it.

    Without ``config`` the configuration is written here: the layout above with the dry-run firewall,
    followed by ``settings`` (YAML lines: metrics, spool, sinks, ...). With ``config`` it is the caller's,
    and must use ``root / "run"`` as the runtime directory and follow ``log``. ``arguments`` are added to
    bastiond's command line; ``wrap`` turns that command line into the argv and environment that run it
    elsewhere (another network namespace, a private /run).
    """

    def __init__(self, root: Path, *, settings: str = "", rules_dir: Path | None = None,
                 config: Path | None = None, log: Path | None = None, arguments: Sequence[str] = (),
                 wrap: Callable[[Sequence[str]], tuple[list[str], dict[str, str]]] | None = None) -> None:
        self.root = root
        self.log = log or root / "auth.log"
        self.rules = rules_dir or root / "rules"
        self.socket = root / "run" / "bastiond.sock"
        self.output_file = root / "bastiond-output" / "bastiond.log"
        self.config = config or root / "bastiond.yaml"
        if config is None:
            self.config.write_text(
                f"sources: [{{type: file, path: {self.log}}}]\n"
                f"rules_dir: {self.rules}\nstate_dir: {root / 'state'}\nruntime_dir: {root / 'run'}\n"
                "firewall: {backend: dry-run}\n" + settings
            )
        self.arguments = tuple(arguments)
        self.wrap = wrap
        self.process: subprocess.Popen[bytes] | None = None
        self.appended = 0  # lines appended to the log with append(), over all runs
        self._run_starts_at = 0  # offset in output_file where the current run's output begins

    def start(self, *, env: Mapping[str, str] | None = None, wait: bool = True,
              timeout: float = START_TIMEOUT) -> None:
        """Start the daemon (``env`` added to this environment); with ``wait``, return once its control socket
        answers ``bastionctl status``, and fail with its output if it exits first."""
        assert not self.running(), "bastiond is already running"
        self.output_file.parent.mkdir(exist_ok=True)
        self._run_starts_at = self.output_file.stat().st_size if self.output_file.exists() else 0
        argv = [sys.executable, "-m", "bastion_guard.cli.bastiond", *self.arguments, "--config", str(self.config)]
        base = dict(os.environ)
        if self.wrap is not None:
            argv, base = self.wrap(argv)
        with self.output_file.open("ab") as output:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                            env={**base, **(env or {})})
        if wait:
            process = self.process
            wait_until(lambda: process.poll() is not None or self._answers(), "bastiond's control socket", timeout)
            assert process.poll() is None, f"bastiond exited with {process.returncode}:\n{self.output()}"

    def _answers(self) -> bool:
        return self.socket.exists() and self.ctl("status").returncode == 0

    def running(self) -> bool:
        """Whether the process of the last start is still alive."""
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """Everything the daemon wrote (stdout and stderr), all runs."""
        return self.output_file.read_text(errors="replace") if self.output_file.exists() else ""

    def run_output(self) -> str:
        """What the daemon wrote in its latest run."""
        if not self.output_file.exists():
            return ""
        return self.output_file.read_bytes()[self._run_starts_at:].decode(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        """SIGTERM, wait for a clean exit (status 0) and return what this run wrote."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        returncode = self.process.wait(timeout=timeout)
        self.process = None
        output = self.run_output()
        assert returncode == 0, output
        return output

    def kill(self) -> None:
        """SIGKILL: no clean shutdown at all (what the spool and the saved position must survive)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        """Teardown: whatever still runs (the daemon and its sink process) gets SIGTERM, then SIGKILL, by pid."""
        stop_process(self.process, grace=10.0)
        self.process = None

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the real ``bastionctl ARGS --socket ...`` against this daemon."""
        return subprocess.run(
            [sys.executable, "-m", "bastion_guard.cli.bastionctl", *args, "--socket", str(self.socket)],
            capture_output=True, text=True, check=False, timeout=30,
        )

    def status(self) -> dict[str, Any]:
        """``bastionctl status -o json``."""
        result = self.ctl("status", "-o", "json")
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def sink(self, name: str) -> dict[str, Any]:
        """The named sink's entry in ``bastionctl status -o json`` (health, spool depth)."""
        [sink] = [sink for sink in self.status()["shipping"]["sinks"] if sink["name"] == name]
        found: dict[str, Any] = sink
        return found

    def lines_read(self) -> int:
        """Lines the (single) source processed in this run of the daemon."""
        return int(self.status()["sources"][0]["lines"])

    def wait_lines(self, expected: int, timeout: float = START_TIMEOUT) -> None:
        """Wait until this run of the daemon processed at least ``expected`` lines."""
        wait_until(lambda: self.lines_read() >= expected, f"{expected} lines processed", timeout)

    def append(self, lines: Iterable[str]) -> None:
        """Append ``lines`` (each ending in a newline) to the followed log, counted in :attr:`appended`."""
        with self.log.open("a") as out:
            for line in lines:
                out.write(line)
                self.appended += 1
