#!/usr/bin/env python3
"""Events/s through the shipping path (loop -> spool -> worker -> Elasticsearch), beside the detection path's
rate measured on the same log in the same run.

* detection: ``replay_file(path, ruleset)`` (what ``bastionctl test`` runs: parse + rules): the rate the
  daemon's loop produces events at, which the shipping path must keep up with;
* the loop with and without spooling: the same parse + rules per read chunk (about one loop batch), then,
  with sinks, what :meth:`Shipping.append_batch` does (the batch's events and decision records into the
  spool in one fsync'ed transaction), best of ``--repeat`` each, interleaved; and once more while a worker
  delivers from the same interpreter (the GIL: the worker's Python time is taken from the loop), and while
  the workers deliver from their own process as the daemon runs them (bastion_guard.shipping.process);
* the shipping side's CPU: a worker alone draining the filled spool into a cheap drain (bench/es_drain.py,
  its own process, parses nothing), plus what spooling added to the loop, as events per CPU-second;
* end to end: appends while a worker delivers, until the spool is empty, into the drain (the throughput
  number; with the worker in this process and in the sink process) and into the Elasticsearch protocol test
  double (tests/doubles/es_double.py: it parses and checks
  every document, so it is the slower party; the run checks every document arrived, ``GET <index>/_count``).

The spools live in a temporary directory (``--dir`` to put them on another disk). Nothing asserts a time;
results go to stdout and ``bench/out/shipping.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import common

common.ensure_import_path()
DOUBLE = common.REPO_ROOT / "tests" / "doubles" / "es_double.py"
DRAIN = common.BENCH_DIR / "es_drain.py"

from bastion_guard.decisions import Decision  # noqa: E402
from bastion_guard.events import Event  # noqa: E402
from bastion_guard.parsing import LineParser  # noqa: E402
from bastion_guard.reading import iter_batches  # noqa: E402
from bastion_guard.replay import replay_file  # noqa: E402
from bastion_guard.rules import Engine, RuleSet, load_rules  # noqa: E402
from bastion_guard.shipping.elasticsearch import ElasticsearchSink  # noqa: E402
from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig  # noqa: E402
from bastion_guard.shipping.process import ProcessPlan, SinkPlan, WorkerProcess  # noqa: E402
from bastion_guard.shipping.records import decision_record  # noqa: E402
from bastion_guard.shipping.spool import Bounds, Spool  # noqa: E402
from bastion_guard.shipping.worker import Backoff, Worker  # noqa: E402

BASTION = "bench"


@dataclass(frozen=True)
class LoopRun:
    """One pass of the loop over the log: wall and CPU seconds, events parsed."""

    seconds: float
    cpu_seconds: float
    events: int


def detection(path: Path, ruleset: RuleSet) -> tuple[float, int]:
    """Seconds of one ``replay_file`` pass, and the events it parsed."""
    started = time.perf_counter()
    report = replay_file(path, ruleset)
    return time.perf_counter() - started, sum(report.events_by_kind.values())


def loop(path: Path, ruleset: RuleSet, spool: Spool | None) -> LoopRun:
    """Parse and decide chunk by chunk as the daemon's loop does; with ``spool``, spool each chunk's events
    and decisions as :meth:`Shipping.append_batch` does, before the next."""
    parser = LineParser(path.stat().st_mtime)
    parse, feed = parser.parse, Engine(ruleset).feed
    name, count, total = f"file:{path}", 0, 0
    started, cpu_started = time.perf_counter(), time.process_time()
    with path.open("rb") as stream:
        for _offset, texts in iter_batches(stream):
            events: list[Event] = []
            decisions: list[Decision] = []
            for text in texts:
                count += 1
                result = parse(text, name, count)
                if isinstance(result, Event):
                    events.append(result)
                    found = feed(result)
                    if found:
                        decisions.extend(found)
            total += len(events)
            if spool is not None:
                spool.append_batch(events, BASTION, [decision_record(d, BASTION) for d in decisions])
    return LoopRun(time.perf_counter() - started, time.process_time() - cpu_started, total)


@contextmanager
def receiver(script: Path) -> Iterator[str]:
    """Run an Elasticsearch receiver (the drain or the double) in its own process; yield its URL."""
    process = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stdin is not None
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.stdin.close()
        process.wait(timeout=10)


def stored(url: str) -> int:
    """Documents the receiver holds in the auth data stream."""
    with urllib.request.urlopen(f"{url}/logs-bastion.auth-default/_count") as answer:  # noqa: S310 (local)
        return int(json.load(answer)["count"])


@contextmanager
def delivering(spool: Spool, url: str) -> Iterator[Worker]:
    """One worker delivering ``spool`` to ``url`` in bulks of up to 2000, from a thread of this process."""
    sink = ElasticsearchSink(ElasticsearchConfig(hosts=(url,)), "es")
    worker = Worker(sink, spool, backoff=Backoff(0.01, 0.1))
    sink.health()
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        worker.join(timeout=10)


class Unreported:
    """Metrics nobody reads (the bench measures the spool and the receiver instead)."""

    def output_events(self, output: str, result: str, count: int) -> None:
        """Nothing."""

    def observe_send(self, output: str, seconds: float) -> None:
        """Nothing."""

    def set_output_up(self, output: str, up: bool) -> None:
        """Nothing."""


@contextmanager
def delivering_from_process(spool: Spool, url: str) -> Iterator[WorkerProcess]:
    """The daemon's way: the worker in the sink process, reading the same spool file."""
    plan = ProcessPlan(spool.path, spool.bounds, (SinkPlan("elasticsearch", "es", ElasticsearchConfig(hosts=(url,))),),
                       Backoff(0.01, 0.1), logging.WARNING)
    workers = WorkerProcess(plan, Unreported())
    workers.start()
    try:
        yield workers
    finally:
        workers.stop()


def wait_empty(spool: Spool) -> None:
    """Until every record has been delivered."""
    while spool.size()[0]:
        time.sleep(0.005)


def drain_filled(spool: Spool, url: str) -> tuple[float, float]:
    """Wall and CPU seconds for a worker to deliver a filled spool (nothing else runs in this process)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with delivering(spool, url):
        wait_empty(spool)
        return time.perf_counter() - started, time.process_time() - cpu_started


def end_to_end(path: Path, ruleset: RuleSet, spool: Spool, url: str, *,
               separate: bool = False) -> tuple[LoopRun, float]:
    """The loop spooling while a worker delivers (from this process, or ``separate``ly from the sink
    process): the loop's pass, and seconds until the spool is empty."""
    started = time.perf_counter()
    with delivering_from_process(spool, url) if separate else delivering(spool, url):
        run = loop(path, ruleset, spool)
        wait_empty(spool)
        return run, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (one linear report)
    """Measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines of the generated log (default 200,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each loop variant; the best counts")
    parser.add_argument("--dir", type=Path, default=None, help="where the spool files go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=common.OUT_DIR / "shipping.json")
    args = parser.parse_args(argv)
    tag = common.source_tag(common.GENERATOR.read_bytes())
    path = common.OUT_DIR / f"authlog-{args.lines}-rfc3339-s1-{tag}.log"
    if not path.exists():
        common.run_generator(path, ["--lines", str(args.lines), "--format", "rfc3339", "--seed", "1"])
    ruleset = load_rules(common.RULES_DIR)
    gc.freeze()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)

        def fresh(name: str) -> Spool:
            (directory / name).unlink(missing_ok=True)
            return Spool.open(directory / name, ["es"], Bounds(max_bytes=0))

        detect_s, events = min(detection(path, ruleset) for _ in range(max(1, args.repeat)))
        plain: list[LoopRun] = []
        spooled: list[LoopRun] = []
        for _ in range(args.repeat):  # interleaved, so a neighbour's load hits both alike
            plain.append(loop(path, ruleset, None))
            spool = fresh("loop.db")
            spooled.append(loop(path, ruleset, spool))
            spool.close()
        spool = fresh("filled.db")
        loop(path, ruleset, spool)
        with receiver(DRAIN) as url:
            worker_s, worker_cpu = drain_filled(spool, url)
            spool.close()
            spool = fresh("e2e-drain.db")
            before = stored(url)
            live, drain_s = end_to_end(path, ruleset, spool, url)
            drain_stored = stored(url) - before
            spool.close()
            spool = fresh("e2e-process.db")
            before = stored(url)
            apart, apart_s = end_to_end(path, ruleset, spool, url, separate=True)
            apart_stored = stored(url) - before
            spool.close()
        with receiver(DOUBLE) as url:
            spool = fresh("e2e-double.db")
            _run, double_s = end_to_end(path, ruleset, spool, url)
            double_stored = stored(url)
            spool.close()
    best_plain = min(plain, key=lambda run: run.seconds)
    best_spooled = min(spooled, key=lambda run: run.seconds)
    detect_rate = events / detect_s
    plain_rate, spooled_rate, live_rate, apart_rate = (
        events / run.seconds for run in (best_plain, best_spooled, live, apart))
    added_cpu = max(0.0, min(r.cpu_seconds for r in spooled) - min(r.cpu_seconds for r in plain))
    shipping_cpu = added_cpu + worker_cpu
    cpu_rate = events / shipping_cpu
    print(f"input: {path} ({args.lines:,} lines, {events:,} events)")
    print(f"detection path (replay_file: parse + rules)       {detect_rate:>10,.0f} events/s  (best of {args.repeat})")
    print(f"loop, no sinks (parse + rules per chunk)          {plain_rate:>10,.0f} events/s")
    print(f"loop, spooling every chunk                        {spooled_rate:>10,.0f} events/s  = "
          f"{spooled_rate / plain_rate:.2f}x the loop without sinks")
    print(f"loop, spooling while a worker delivers            {live_rate:>10,.0f} events/s  = "
          f"{live_rate / plain_rate:.2f}x the loop without sinks")
    print(f"loop, spooling while the sink process delivers    {apart_rate:>10,.0f} events/s  = "
          f"{apart_rate / plain_rate:.2f}x the loop without sinks")
    append_us, worker_us = added_cpu / events * 1e6, worker_cpu / events * 1e6
    print(f"shipping side CPU (spool append {append_us:.1f} us + worker {worker_us:.1f} us an event): "
          f"{cpu_rate:,.0f} events per CPU-second = {cpu_rate / detect_rate:.2f}x detection")
    print(f"worker alone, filled spool -> drain               {events / worker_s:>10,.0f} events/s  = "
          f"{events / worker_s / detect_rate:.2f}x detection")
    print(f"end to end (loop + worker) -> drain               {events / drain_s:>10,.0f} events/s  = "
          f"{events / drain_s / detect_rate:.2f}x detection  ({drain_stored:,} taken)")
    print(f"end to end (loop + sink process) -> drain         {events / apart_s:>10,.0f} events/s  = "
          f"{events / apart_s / detect_rate:.2f}x detection  ({apart_stored:,} taken)")
    print(f"end to end (loop + worker) -> ES protocol double  {events / double_s:>10,.0f} events/s  = "
          f"{events / double_s / detect_rate:.2f}x detection  ({double_stored:,} documents stored)")
    common.write_json(args.json, {
        "benchmark": "shipping", "machine": common.machine_info(), "input": str(path), "events": events,
        "detection_events_per_s": detect_rate, "loop_events_per_s": plain_rate,
        "loop_spooling_events_per_s": spooled_rate, "loop_spooling_with_worker_events_per_s": live_rate,
        "loop_spooling_with_sink_process_events_per_s": apart_rate,
        "end_to_end_sink_process_drain_events_per_s": events / apart_s,
        "shipping_events_per_cpu_s": cpu_rate, "spool_append_cpu_us_per_event": append_us,
        "worker_cpu_us_per_event": worker_us, "worker_events_per_s": events / worker_s,
        "end_to_end_drain_events_per_s": events / drain_s, "end_to_end_double_events_per_s": events / double_s,
        "drain_taken": drain_stored, "double_stored": double_stored,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
