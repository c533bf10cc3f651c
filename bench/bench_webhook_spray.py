#!/usr/bin/env python3
"""A 50,000-ban spray through the webhook sink: messages sent, drain time, and records/s of the sink.

The sink is driven the way the delivery worker drives it (a batch at a time, re-sending only records
answered RETRY after their ``retry_after_secs``), on a simulated clock for the rate limit, against a local
plain-HTTP receiver on 127.0.0.1 that answers 200 ``ok`` (Slack's answer). Two figures per batch size:

* messages and simulated drain time: what Slack's channel sees (rate limit 1/s, burst 5, digests 10 s);
* records/s of real CPU and network time, beside a floor measured in the same run: building the 50,000
  decision records the daemon spools anyway (``decision_record``). The ratio says whether the webhook path
  can fall behind the detection path: it only needs to exceed the rate records are made.

Nothing here asserts a time. Results go to stdout and ``bench/out/webhook_spray.json``.
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import common

common.ensure_import_path()

from bastion_guard.decisions import Decision, Verdict  # noqa: E402 (after the path set-up)
from bastion_guard.shipping.base import Result  # noqa: E402
from bastion_guard.shipping.records import Record, decision_record  # noqa: E402
from bastion_guard.shipping.webhook.config import Format, RateLimit, WebhookConfig  # noqa: E402
from bastion_guard.shipping.webhook.secrets import Secret  # noqa: E402
from bastion_guard.shipping.webhook.sink import WebhookSink  # noqa: E402
from bastion_guard.shipping.webhook.transport import Transport  # noqa: E402

T0 = 1795899600.0


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def make_records(count: int) -> list[Record]:
    """``count`` bans of distinct addresses by one rule, 10 ms apart."""
    return [decision_record(Decision(Verdict.BAN, "sshd-bruteforce", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                                     T0 + i * 0.01, 3600.0, 12, 1, "12 x auth_failure within 10m", ()), "bastion1")
            for i in range(count)]


def run(url: str, records: list[Record], batch: int) -> dict[str, Any]:
    """Drain ``records`` through a Slack-format sink; simulated clock for the limit, real time measured."""
    simulated = [0.0]
    config = WebhookConfig(Format.SLACK, rate_limit=RateLimit(1.0, 5), digest_secs=10.0)
    sink = WebhookSink("bench", config, Transport(Secret(url), ca_file=None, timeout_secs=10),
                       clock=lambda: simulated[0])
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        pending = records[start:start + batch]
        while pending:
            answers = sink.deliver(pending)
            retry = [r for r, d in zip(pending, answers, strict=True) if d.result is Result.RETRY]
            waits = [d.retry_after_secs or 1.0 for d in answers if d.result is Result.RETRY]
            simulated[0] += max(waits, default=0.0)
            pending = retry
    seconds = time.perf_counter() - started
    stats = sink.stats
    return {"batch": batch, "messages": stats.messages + stats.digests, "digests": stats.digests,
            "records_sent": stats.sent, "records_digested": stats.digested, "simulated_drain_s": simulated[0],
            "wall_s": seconds, "records_per_s": len(records) / seconds}


def main() -> None:
    """Run the spray for batch sizes 500 (the worker's default) and 10,000 (the sink's preferred size)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--json", type=Path, default=common.OUT_DIR / "webhook_spray.json")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/bench"
    started = time.perf_counter()
    records = make_records(args.count)
    floor = args.count / (time.perf_counter() - started)
    print(f"floor: decision_record for {args.count:,} bans: {floor:,.0f} records/s")
    results = []
    for batch in (500, 10_000):
        result = run(url, records, batch)
        results.append(result)
        print(f"batch {batch:>6}: {result['messages']} messages ({result['digests']} digests), simulated drain "
              f"{result['simulated_drain_s']:,.0f} s; sink {result['records_per_s']:,.0f} records/s = "
              f"{result['records_per_s'] / floor:.1f} x floor")
    server.shutdown()
    common.write_json(args.json, {"machine": common.machine_info(), "floor_records_per_s": floor,
                                  "runs": results})


if __name__ == "__main__":
    main()
