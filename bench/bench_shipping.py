#!/usr/bin/env python3
"""Events/s through the shipping path (records -> spool -> worker -> Elasticsearch double), beside the
detection path's rate measured on the same log in the same run.

* detection: ``replay_file(path, ruleset)`` (what ``bastionctl test`` runs: parse + rules); its events/s is
  the rate the daemon's loop can produce events at, so the shipping path must at least match it;
* loop side of shipping: build each event's record and ``Spool.append`` it in batches of ``--batch`` events,
  as the daemon's loop does before it commits a position (the cost shipping adds to detection);
* end to end: the same appends while one worker thread delivers to the Elasticsearch protocol test double
  (tests/doubles/es_double.py, in its own process as a cluster would be) over HTTP in bulks of up to 2000, timed
  until the spool is empty. The double is a Python server that parses every document, so this is a lower
  bound for a real cluster.

The spool lives in a temporary directory (``--dir`` to put it on another disk). Nothing asserts a time;
results go to stdout and ``bench/out/shipping.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import common

common.ensure_import_path()
DOUBLE = common.REPO_ROOT / "tests" / "doubles" / "es_double.py"

from bastion_guard.events import Event  # noqa: E402
from bastion_guard.parsing import LineParser  # noqa: E402
from bastion_guard.replay import replay_file  # noqa: E402
from bastion_guard.rules import load_rules  # noqa: E402
from bastion_guard.shipping.elasticsearch import ElasticsearchSink  # noqa: E402
from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig  # noqa: E402
from bastion_guard.shipping.records import event_record  # noqa: E402
from bastion_guard.shipping.spool import Bounds, Spool  # noqa: E402
from bastion_guard.shipping.worker import Backoff, Worker  # noqa: E402


def parsed_events(path: Path) -> list[Event]:
    """Every event of ``path`` (untimed: the input of the shipping path)."""
    parser = LineParser(path.stat().st_mtime)
    events = []
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            result = parser.parse(raw.rstrip(b"\n").decode("utf-8", "replace"), f"file:{path}", number)
            if isinstance(result, Event):
                events.append(result)
    return events


def detection(path: Path, repeat: int) -> tuple[float, int]:
    """Best-of-``repeat`` seconds of the detection path, and the events it parsed."""
    ruleset = load_rules(common.RULES_DIR)
    best, events = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        report = replay_file(path, ruleset)
        best = min(best, time.perf_counter() - started)
        events = sum(report.events_by_kind.values())
    return best, events


def append_all(spool: Spool, events: list[Event], batch: int) -> float:
    """Build records and append them batch by batch, as the loop does; return the seconds it took."""
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        spool.append([event_record(event, "bench") for event in events[start:start + batch]])
    return time.perf_counter() - started


def loop_side(directory: Path, events: list[Event], batch: int) -> float:
    """Seconds to spool every event, with no worker running."""
    spool = Spool.open(directory / "loop-side.db", ["es"], Bounds(max_bytes=0))
    try:
        return append_all(spool, events, batch)
    finally:
        spool.close()


def end_to_end(directory: Path, events: list[Event], batch: int) -> dict[str, Any]:
    """Append while a worker delivers to the double (in its own process, as a cluster would be); seconds
    until every event is stored there."""
    double = subprocess.Popen([sys.executable, str(DOUBLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert double.stdout is not None and double.stdin is not None
    url = f"http://127.0.0.1:{int(double.stdout.readline())}"
    spool = Spool.open(directory / "end-to-end.db", ["es"], Bounds(max_bytes=0))
    sink = ElasticsearchSink(ElasticsearchConfig(hosts=(url,)), "es")
    worker = Worker(sink, spool, backoff=Backoff(0.01, 0.1))
    try:
        sink.health()
        started, cpu_started = time.perf_counter(), time.process_time()
        worker.start()
        appended = threading.Thread(target=append_all, args=(spool, events, batch))
        appended.start()
        appended.join()
        while spool.size()[0]:
            time.sleep(0.005)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        with urllib.request.urlopen(f"{url}/logs-bastion.auth-default/_count") as answer:  # noqa: S310 (local)
            stored = json.load(answer)["count"]
    finally:
        worker.stop()
        worker.join(timeout=10)
        spool.close()
        double.stdin.close()
        double.wait(timeout=10)
    return {"seconds": seconds, "cpu_seconds": cpu, "stored": stored}


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines of the generated log (default 200,000)")
    parser.add_argument("--batch", type=int, default=8000,
                        help="events per spool append (default 8000: the loop reads up to 10,000 lines a batch)")
    parser.add_argument("--repeat", type=int, default=3, help="detection runs; the best counts (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where the spool files go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=common.OUT_DIR / "shipping.json")
    args = parser.parse_args(argv)
    tag = common.source_tag(common.GENERATOR.read_bytes())
    path = common.OUT_DIR / f"authlog-{args.lines}-rfc3339-s1-{tag}.log"
    if not path.exists():
        common.run_generator(path, ["--lines", str(args.lines), "--format", "rfc3339", "--seed", "1"])
    detect_s, detect_events = detection(path, args.repeat)
    events = parsed_events(path)
    gc.freeze()  # the input list is the harness's, not the path's: keep the collector from re-scanning it
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        spool_s = loop_side(Path(tmp), events, args.batch)
        e2e = end_to_end(Path(tmp), events, args.batch)
    detect_rate = detect_events / detect_s
    spool_rate = len(events) / spool_s
    e2e_rate = len(events) / e2e["seconds"]
    print(f"input: {path} ({args.lines:,} lines, {len(events):,} events)")
    print(f"detection path (parse + rules)           {detect_rate:>12,.0f} events/s  (best of {args.repeat})")
    print(f"loop side: records + spool append        {spool_rate:>12,.0f} events/s  = {spool_rate / detect_rate:.2f}x "
          f"detection")
    print(f"end to end: spool -> worker -> ES double {e2e_rate:>12,.0f} events/s  = {e2e_rate / detect_rate:.2f}x "
          f"detection  ({e2e['stored']:,} documents stored)")
    cpu_rate = len(events) / e2e["cpu_seconds"]
    print(f"shipping CPU (loop side + worker, this process; the double excluded): {cpu_rate:,.0f} events per "
          f"CPU-second = {cpu_rate / detect_rate:.2f}x detection")
    print(f"detection + loop side together: {1 / (1 / detect_rate + 1 / spool_rate):,.0f} events/s "
          f"({(1 / spool_rate) / (1 / detect_rate) * 100:.0f}% added per event)")
    common.write_json(args.json, {
        "benchmark": "shipping", "machine": common.machine_info(), "input": str(path), "events": len(events),
        "detection_events_per_s": detect_rate, "spool_append_events_per_s": spool_rate,
        "end_to_end_events_per_s": e2e_rate, "shipping_events_per_cpu_s": cpu_rate, "stored": e2e["stored"],
        "batch": args.batch,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
