"""A real Prometheus for tests: started on a free loopback port with a given config, stopped by pid.

Debian's ``prometheus`` package provides the binary. Its first scrape lands 5-6 s after start, so callers
wait for the series they need with :meth:`Prometheus.wait_for`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realparts import free_port, stop_process, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def missing() -> str | None:
    """Why a Prometheus cannot be started here, or None."""
    if not Path(PROMETHEUS).exists():
        return "prometheus is not installed (Debian package prometheus)"
    return None


@dataclass
class Prometheus:
    """The HTTP API of one running Prometheus."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query; the decoded answer (errors come back as JSON too)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:  # 400/422 carry {"status": "error", ...}; 503 while starting
            body = error.read()
            if not body.startswith(b"{"):
                raise
            answer = json.loads(body)
        return answer

    def result(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query that must succeed."""
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(self, expr: str, what: str, timeout: float = 30.0) -> None:
        """Wait until ``expr`` returns a non-empty result."""

        def ready() -> bool:
            assert self.process.poll() is None, self.log()
            try:
                return bool(self.result(expr))
            except OSError:  # not listening yet
                return False

        try:
            wait_until(ready, what, timeout=timeout)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{self.log()}") from error

    def log(self) -> str:
        """The end of Prometheus's own log, for assertion messages."""
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def running_prometheus(workdir: Path, config: str) -> Iterator[Prometheus]:
    """Prometheus with ``config`` (YAML text) on a free port of 127.0.0.1; killed on exit."""
    config_path = workdir / "prometheus.yml"
    config_path.write_text(config)
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield Prometheus(port, workdir, process)
    finally:
        stop_process(process)
