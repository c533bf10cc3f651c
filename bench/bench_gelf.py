#!/usr/bin/env python3
"""Can the GELF sink keep up with detection? Records/s through the sink against the detection path's rate.

All in one run, on one generated auth log:

* baseline: the detection path, ``replay_file`` (parse + rules), in lines/s, turned into the events/s it
  produces (the share of lines that yield an event, measured on the same file);
* mapping: ``to_gelf`` + ``encode`` of every event record, no I/O;
* each transport: ``GelfSink.deliver`` in batches of ``--batch`` to the GELF protocol test double of that
  transport (UDP gzip, TCP, HTTP one message per request, HTTP bulk), which runs in a child process so that
  its JSON decoding and validation do not share this process's interpreter lock. The double validates every
  message; its counts and violations are printed (for UDP, "received" below "sent" is loss the sender cannot
  see). A Python double is slower than Graylog, so UDP, TCP and bulk HTTP are timed a second time against a
  drain that only counts (datagrams, null bytes, lines of bodies answered 202): that is the sender's own
  rate.

Ratios are sink records/s over detection events/s: 1.0 or more means the sink is not the bottleneck. The
spool in front of a sink is measured elsewhere (the shipping benchmark). Best of ``--repeat`` runs;
nothing asserts a time. Results: stdout and ``bench/out/gelf.json``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

TRANSPORTS = ("udp", "tcp", "http", "http-bulk")


def drain(transport: str) -> int:
    """Child process: a receiver that only counts (UDP datagrams, TCP null bytes, bulk HTTP lines answered
    202 without parsing), to time the sender alone."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    listener = socket.socket(socket.AF_INET, kind)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    listener.bind(("127.0.0.1", 0))
    counted = [0]

    def count() -> None:
        if kind == socket.SOCK_DGRAM:
            while True:
                listener.recv(65535)
                counted[0] += 1
        listener.listen()
        conn, _ = listener.accept()
        if transport == "http-bulk":
            answer_http(conn, counted)
            return
        while data := conn.recv(1 << 20):
            counted[0] += data.count(b"\0")

    threading.Thread(target=count, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    sys.stdin.read()
    time.sleep(0.5)
    print(json.dumps({"received": counted[0], "violations": [], "violation_count": 0}), flush=True)
    return 0


def answer_http(conn: socket.socket, counted: list[int]) -> None:
    """Read requests by Content-Length and answer each 202, counting the newline-separated messages."""
    stream = conn.makefile("rb")
    while True:
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if not line:
            return
        counted[0] += stream.read(length).count(b"\n") + 1
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


def serve(transport: str) -> int:
    """Child process: run one double, print its port, and when stdin closes print its counts as JSON."""
    sys.path.insert(0, str(common.REPO_ROOT / "tests"))
    from doubles.gelf_double import HttpReceiver, TcpReceiver, UdpReceiver  # noqa: PLC0415

    receiver = {"udp": UdpReceiver, "tcp": TcpReceiver, "http": HttpReceiver}[transport.removesuffix("-bulk")](
        keep=False, **({"bulk": True} if transport == "http-bulk" else {}))
    print(receiver.port, flush=True)
    sys.stdin.read()
    time.sleep(0.5)  # the last datagrams and frames in flight
    print(json.dumps({"received": receiver.count, "violations": receiver.violations[:5],
                      "violation_count": len(receiver.violations)}), flush=True)
    receiver.close()
    return 0


def event_records(path: Path) -> tuple[list[Any], int]:
    """Every event of ``path`` as a record (untimed), and the number of lines."""
    from bastion_guard.events import Event  # noqa: PLC0415
    from bastion_guard.parsing import LineParser  # noqa: PLC0415
    from bastion_guard.shipping.records import event_record  # noqa: PLC0415

    parser = LineParser(path.stat().st_mtime, UTC)
    records, lines, position = [], 0, 0
    with path.open("rb") as stream:
        for raw in stream:
            lines += 1
            line = raw.rstrip(b"\n").decode("utf-8", "backslashreplace")
            result = parser.parse(line, f"file:{path}", position)
            if isinstance(result, Event):
                records.append(event_record(result.located(f"file:{path}", position, line), "bench-bastion"))
            position += len(raw)
    return records, lines


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """The shortest wall time of ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return min(runs)


def measure_transport(transport: str, records: list[Any], batch: int, repeat: int, mode: str) -> dict[str, Any]:
    """Records/s through a sink of ``transport`` to a child process (``mode``: the validating double, or a
    drain that only counts), and what the child received."""
    from bastion_guard.shipping.base import Result  # noqa: PLC0415
    from bastion_guard.shipping.gelf_chunks import WAN_CHUNK_BYTES, Compression  # noqa: PLC0415
    from bastion_guard.shipping.gelf_http import HttpTransport  # noqa: PLC0415
    from bastion_guard.shipping.gelf_sink import GelfSink  # noqa: PLC0415
    from bastion_guard.shipping.gelf_transport import GelfTransport, TcpTransport, UdpTransport  # noqa: PLC0415

    child = subprocess.Popen([sys.executable, __file__, f"--{mode}", transport], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())
    sender: GelfTransport
    if transport == "udp":
        sender = UdpTransport("127.0.0.1", port, WAN_CHUNK_BYTES, Compression.GZIP, 10.0)
    elif transport == "tcp":
        sender = TcpTransport("127.0.0.1", port, 10.0, None)
    else:
        sender = HttpTransport("127.0.0.1", port, "/gelf", timeout_secs=10.0, tls=None, bulk=transport == "http-bulk")
    sink = GelfSink(f"bench-{transport}", sender)
    failed = 0

    def run() -> None:
        nonlocal failed
        for start in range(0, len(records), batch):
            deliveries = sink.deliver(records[start : start + batch])
            failed += sum(1 for delivery in deliveries if delivery.result is not Result.DELIVERED)

    seconds = best_of(run, repeat)
    sink.close()
    child.stdin.close()
    counts = json.loads(child.stdout.readline())
    child.wait(30)
    return {"seconds": seconds, "records_per_s": len(records) / seconds, "sent": len(records) * repeat,
            "not_delivered": failed, **counts}


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--lines", type=int, default=100_000, help="lines of the generated log (default 100,000)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per path; the best counts (default 3)")
    p.add_argument("--batch", type=int, default=500, help="records per deliver() call, as the spool worker")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=common.OUT_DIR / "gelf.json")
    p.add_argument("--serve", choices=TRANSPORTS, help=argparse.SUPPRESS)
    p.add_argument("--drain", choices=("udp", "tcp", "http-bulk"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    common.ensure_import_path()
    if args.serve:
        return serve(args.serve)
    if args.drain:
        return drain(args.drain)
    from bastion_guard.shipping.gelf import encode, to_gelf  # noqa: PLC0415

    tag = common.source_tag(common.GENERATOR.read_bytes())
    path = common.OUT_DIR / f"authlog-{args.lines}-rfc3339-s{args.seed}-{tag}.log"
    if not path.exists():
        common.run_generator(path, ["--lines", str(args.lines), "--format", "rfc3339", "--seed", str(args.seed)])
    api = common.load_detection_api()
    if isinstance(api, str):
        print(api)
        return 1
    ruleset = api.load_rules(common.RULES_DIR)
    records, lines = event_records(path)
    detect_s = best_of(lambda: api.replay_file(path, ruleset), args.repeat)
    detect_events_per_s = len(records) / detect_s
    mapping_s = best_of(lambda: [encode(to_gelf(record)) for record in records], args.repeat)
    results: dict[str, Any] = {"mapping (to_gelf + encode)": {"seconds": mapping_s,
                                                               "records_per_s": len(records) / mapping_s}}
    for transport in TRANSPORTS:
        results[f"{transport} sink -> double"] = measure_transport(transport, records, args.batch, args.repeat,
                                                                   "serve")
        if transport != "http":  # one request per message: the double's request handling is the whole cost
            results[f"{transport} sink -> drain"] = measure_transport(transport, records, args.batch,
                                                                      args.repeat, "drain")
    print(f"input: {path.name}: {lines:,} lines, {len(records):,} events ({len(records) / lines:.0%})")
    print(f"baseline, detection path: {lines / detect_s:,.0f} lines/s = {detect_events_per_s:,.0f} events/s")
    print(f"{'path':<30} {'records/s':>12} {'x detection':>12}   receiver")
    for name, result in results.items():
        result["over_detection"] = result["records_per_s"] / detect_events_per_s
        double = ""
        if "received" in result:
            double = (f"received {result['received']:,} of {result['sent']:,}, "
                      f"{result['violation_count']} violations, {result['not_delivered']} not delivered")
        print(f"{name:<30} {result['records_per_s']:>12,.0f} {result['over_detection']:>12.2f}   {double}")
    common.write_json(args.json, {
        "benchmark": "gelf", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(), "input": {"path": str(path), "lines": lines, "events": len(records)},
        "repeat": args.repeat, "batch": args.batch,
        "baseline": {"detect_lines_per_s": lines / detect_s, "detect_events_per_s": detect_events_per_s},
        "results": results,
    })
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
