"""Network namespaces, nftables inside them, and bastiond as a process: shared by the end-to-end test and
the daemon benchmarks (``bench/bench_ban_latency.py``, ``bench/bench_daemon_spray.py`` import this file).

Nothing here touches the host's network or firewall: every namespace carries a random suffix, every nft
command runs as ``ip netns exec NS nft ...``, and every veth or bridge lives inside a namespace made here,
so it goes away with ``ip netns del``. Processes are stopped by their own pid, never by name. Recipes
from ``testing-real-parts.md`` sections 5 and 10. No pytest here: callers turn :class:`UnavailableError`
into a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

TABLE = "bastion_guard"  # the daemon's table: inet bastion_guard, sets ban4/ban6/allow4/...
REPO = Path(__file__).resolve().parents[2]


class UnavailableError(RuntimeError):
    """This machine cannot run namespace tests; the message says why."""


# ----------------------------------------------------------------------------------------------- basics


def missing(tools: Sequence[str] = ("nft",)) -> str | None:
    """Why namespace tests cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns, nft inside a namespace)"
    absent = [tool for tool in ("ip", *tools) if shutil.which(tool) is None]
    if absent:
        return f"missing tools: {', '.join(absent)}"
    return None


def run(*argv: str, stdin: str = "", check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run argv (no shell) with a bound; raise with its stderr when ``check`` and it fails."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def token(nbytes: int = 3) -> str:
    """A random hex suffix for names that must not collide with a parallel run."""
    return secrets.token_hex(nbytes)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` every ``step`` s until it holds (True) or ``timeout`` s pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal one process by pid; gone already is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# ----------------------------------------------------------------------------------------------- namespaces


@contextlib.contextmanager
def netns(prefix: str) -> Iterator[str]:
    """A fresh network namespace ``<prefix>-<random>`` with ``lo`` up; afterwards its processes are killed
    (only those inside it) and it is deleted, which removes its veths, bridges and nft tables too."""
    name = f"{prefix}-{token(4)}"
    made = run("ip", "netns", "add", name, check=False)
    if made.returncode != 0:
        raise UnavailableError(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        for _ in range(3):
            pids = run("ip", "netns", "pids", name, check=False).stdout.split()
            if not pids:
                break
            for pid in pids:
                kill_pid(int(pid))
            time.sleep(0.05)
        run("ip", "netns", "del", name, check=False)


def bridge(hub: str, hub_cidr: str, spokes: Mapping[str, str], tag: str) -> None:
    """Join namespaces ``spokes`` (name -> CIDR address) to a bridge in ``hub`` holding ``hub_cidr``.

    One veth pair per spoke; all names stay within 15 characters (``bgbr<tag>``, ``bgh<tag><i>``,
    ``bgs<tag><i>``, with a 6-character tag). Everything lives in the namespaces, so deleting them
    removes it.
    """
    br = f"bgbr{tag}"
    run("ip", "-n", hub, "link", "add", br, "type", "bridge")
    run("ip", "-n", hub, "addr", "add", hub_cidr, "dev", br)
    run("ip", "-n", hub, "link", "set", br, "up")
    for index, (spoke, cidr) in enumerate(spokes.items()):
        outer, inner = f"bgh{tag}{index}", f"bgs{tag}{index}"
        run("ip", "link", "add", inner, "netns", spoke, "type", "veth", "peer", "name", outer, "netns", hub)
        run("ip", "-n", hub, "link", "set", outer, "master", br)
        run("ip", "-n", hub, "link", "set", outer, "up")
        run("ip", "-n", spoke, "addr", "add", cidr, "dev", inner)
        run("ip", "-n", spoke, "link", "set", inner, "up")


# ----------------------------------------------------------------------------------------------- nftables


def nft(ns: str, *args: str, stdin: str = "") -> str:
    """``nft ARGS`` inside namespace ``ns``; its stdout."""
    return run("ip", "netns", "exec", ns, "nft", *args, stdin=stdin).stdout


def set_elements(ns: str, name: str = "ban4", table: str = TABLE) -> dict[str, float]:
    """Elements of set ``inet <table> <name>`` in ``ns`` with their seconds left (``inf``: no timeout);
    empty when the table or set does not exist."""
    done = run("ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", table, name, check=False)
    if done.returncode != 0:
        return {}
    found: dict[str, float] = {}
    for entry in json.loads(done.stdout).get("nftables", []):
        description = entry.get("set")
        if not isinstance(description, dict):
            continue
        for item in description.get("elem", []):
            if isinstance(item, dict) and isinstance(item.get("elem"), dict):
                elem = item["elem"]
                found[str(elem.get("val"))] = float(elem.get("expires", elem.get("timeout", float("inf"))))
            else:
                found[str(item)] = float("inf")
    return found


def has_element(ns: str, address: str, name: str = "ban4", table: str = TABLE) -> bool:
    """Whether ``address`` is in the set: one ``nft get element`` (a kernel lookup, cheap on a big set)."""
    done = run(
        "ip", "netns", "exec", ns, "nft", "get", "element", "inet", table, name, f"{{ {address} }}", check=False
    )
    return done.returncode == 0


def root_tables() -> set[str]:
    """``nft list tables`` of the root namespace, to check afterwards that nothing appeared there."""
    return set(run("nft", "list", "tables", check=False).stdout.split("\n")) - {""}


_MONITOR_LINE = re.compile(r"^(add|delete) element (\S+) (\S+) (\S+) \{ (.*) \}$")


class NftMonitor:
    """``nft monitor elements`` inside a namespace, in the background: when each element was first added.

    The kernel reports a committed transaction to every monitor at once, so the arrival time of the
    first ``add element`` line naming an address is when that address became enforced (plus the few
    microseconds the pipe takes). Times are ``time.monotonic()``.
    """

    def __init__(self, ns: str, set_name: str = "ban4", table: str = TABLE) -> None:
        self.set_name = set_name
        self.table = table
        self.first_added: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.events = 0
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "nft", "monitor", "elements"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
        )
        self._reader = threading.Thread(target=self._read, name="nft monitor", daemon=True)
        self._reader.start()
        time.sleep(0.2)  # let nft subscribe before anything is measured (it prints nothing until an event)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            now = time.monotonic()
            match = _MONITOR_LINE.match(raw.decode(errors="replace").rstrip("\n"))
            if match is None:
                if raw.strip() and not raw.startswith(b"#"):
                    self.errors.append(raw.decode(errors="replace").strip())
                continue
            verb, _family, table, name, body = match.groups()
            if table != self.table or name != self.set_name:
                continue
            target = self.first_added if verb == "add" else self.deleted
            with self._changed:
                for element in body.split(", "):
                    address = element.split(" ", 1)[0]
                    target.setdefault(address, now)
                    self.events += 1
                self._changed.notify_all()

    def wait_for(self, addresses: Iterable[str], timeout: float) -> bool:
        """Wait until every address in ``addresses`` was added (True), or ``timeout`` s passed (False)."""
        wanted = set(addresses)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not wanted <= self.first_added.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._proc.poll() is not None:
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    def close(self) -> None:
        """Stop nft monitor (by pid) and collect its error output."""
        kill_pid(self._proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        kill_pid(self._proc.pid)
        self._proc.wait(timeout=5)
        self._reader.join(timeout=5)
        if self._proc.stderr is not None:
            tail = self._proc.stderr.read().decode(errors="replace").strip()
            if tail:
                self.errors.append(tail)
            self._proc.stderr.close()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


# ----------------------------------------------------------------------------------------------- traffic

_TCP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("ok" if s.recv(4) == b"SSH-" else "connected")
except TimeoutError:
    print("timeout")
except OSError as exc:
    print(f"error: {exc}")
finally:
    s.close()
"""


def tcp_probe(ns: str, host: str, port: int, timeout: float = 2.0) -> str:
    """Connect from inside ``ns`` to ``host:port`` and read the banner: ``ok`` (an SSH banner came),
    ``connected`` (something else answered), ``timeout`` (the SYN went unanswered: dropped) or ``error: ...``."""
    done = run("ip", "netns", "exec", ns, sys.executable, "-c", _TCP_PROBE, host, str(port), str(timeout),
               timeout=timeout + 20)
    return done.stdout.strip()


# ----------------------------------------------------------------------------------------------- bastiond


def write_rules(
    directory: Path,
    *,
    count: int,
    duration: str,
    window: str = "10m",
    factor: float = 1.0,
    kinds: Sequence[str] = ("auth_failure",),
) -> Path:
    """A rules dir with one ban rule ``sshd-bruteforce`` of our own plus the shipped allowlist (loopback)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "rules" / "allowlist.yaml", directory / "allowlist.yaml")
    (directory / "sshd.yaml").write_text(
        "kind: rule\n"
        "name: sshd-bruteforce\n"
        "description: Test rule (short ban, low threshold).\n"
        f"match: {{kinds: [{', '.join(kinds)}]}}\n"
        f"threshold: {{count: {count}, window_secs: {window}}}\n"
        "action: ban\n"
        f"ban: {{duration_secs: {duration}, factor: {factor}, max_secs: 1d}}\n"
    )
    return directory


class Bastiond:
    """One ``bastiond`` process on a temporary layout (config, state, socket under ``root``).

    Its stderr is read by a thread: every line is kept with its arrival time (``time.monotonic()``) in
    :attr:`lines` and copied to ``root/bastiond.log``. The daemon runs in the namespace it is started in
    (the root one); with ``netns`` its nft commands run in that namespace.
    """

    def __init__(
        self,
        root: Path,
        *,
        log: Path,
        rules_dir: Path,
        firewall: str = "nftables",
        netns: str | None = None,
        allowlist: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.log = log
        self.socket = root / "run" / "bastiond.sock"
        self.config = root / "bastiond.yaml"
        fw = f"{{backend: {firewall}" + (f", netns: {netns}}}" if netns else "}")
        self.config.write_text(
            f"sources: [{{type: file, path: {log}}}]\n"
            f"rules_dir: {rules_dir}\nstate_dir: {root / 'state'}\nruntime_dir: {root / 'run'}\n"
            f"firewall: {fw}\n" + (f"allowlist: [{', '.join(allowlist)}]\n" if allowlist else "")
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.lines: list[tuple[float, str]] = []
        self.started_at = 0.0
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The daemon's pid (the Python process itself)."""
        assert self.process is not None
        return self.process.pid

    def start(self, *extra: str, timeout: float = 30.0, wait: bool = True) -> None:
        """Start the daemon; with ``wait``, return once its control socket answers ``status``."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion_guard.cli.bastiond", "--config", str(self.config), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0,
        )
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self._reader.start()
        if wait:
            self.wait_ready(timeout)

    def _read(self, stream: BinaryIO) -> None:
        with (self.root / "bastiond.log").open("ab") as copy:
            for raw in stream:
                now = time.monotonic()
                copy.write(raw)
                copy.flush()
                with self._lock:
                    self.lines.append((now, raw.decode(errors="replace").rstrip("\n")))
        stream.close()

    def output(self) -> str:
        """Everything the daemon wrote to stderr so far (all runs)."""
        with self._lock:
            return "\n".join(text for _, text in self.lines)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``status`` answers over the socket; raise with the daemon's output if it exits."""
        from bastion_guard.runtime.control import ControlError, request  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                if self._reader is not None:
                    self._reader.join(timeout=5)
                raise RuntimeError(f"bastiond exited with {self.process.returncode}:\n{self.output()}")
            if self.socket.exists():
                with contextlib.suppress(ControlError):
                    request(self.socket, {"command": "status"}, timeout=5)
                    return
            time.sleep(0.02)
        raise RuntimeError(f"bastiond did not answer within {timeout:.0f} s:\n{self.output()}")

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        """One control request in-process (no bastionctl start-up cost); raises ControlError on failure."""
        from bastion_guard.runtime.control import request  # noqa: PLC0415

        return request(self.socket, {"command": command, **arguments}, timeout=60)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the real ``bastionctl ARGS --socket ...`` against this daemon."""
        return subprocess.run(
            [sys.executable, "-m", "bastion_guard.cli.bastionctl", *args, "--socket", str(self.socket)],
            capture_output=True, text=True, check=False, timeout=60,
        )

    def ctl_bans(self) -> list[dict[str, Any]]:
        """``bastionctl bans list -o json``."""
        done = self.ctl("bans", "list", "-o", "json")
        if done.returncode != 0:
            raise RuntimeError(f"bastionctl bans list failed ({done.returncode}): {done.stderr}")
        bans: list[dict[str, Any]] = json.loads(done.stdout)
        return bans

    def offset(self) -> int:
        """Byte offset the (single) source has reached, from ``status``."""
        position = self.request("status")["sources"][0]["position"]
        match = re.match(r"offset (\d+) ", position or "")
        return int(match[1]) if match else 0

    def wait_caught_up(self, timeout: float = 10.0) -> bool:
        """Wait until the daemon has read the followed file to its current end."""
        size = self.log.stat().st_size
        return wait_until(lambda: self.offset() >= size, timeout, step=0.05)

    def vm_hwm_kib(self) -> int:
        """Peak resident set size of the daemon (``VmHWM`` of /proc/PID/status), KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def vm_rss_kib(self) -> int:
        """Current resident set size of the daemon (``VmRSS``), KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def first_line(self, needle: str, since: int = 0) -> tuple[float, str] | None:
        """The first stderr line (from index ``since``) containing ``needle``, with its arrival time."""
        with self._lock:
            for stamp, text in self.lines[since:]:
                if needle in text:
                    return stamp, text
        return None

    def wait_line(self, needle: str, timeout: float, since: int = 0) -> tuple[float, str] | None:
        """Wait for :meth:`first_line`; None after ``timeout`` s."""
        found: list[tuple[float, str]] = []

        def seen() -> bool:
            hit = self.first_line(needle, since)
            if hit is not None:
                found.append(hit)
            return hit is not None

        return found[0] if wait_until(seen, timeout) else None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the daemon, wait for it, return its exit status (SIGKILL after ``timeout`` s)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process is not None else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the daemon by pid if it still runs (finalizers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
