#!/usr/bin/env python3
"""Peak RSS of the detection path while the rules engine tracks 1,000,000 distinct attacking addresses.

The events go through text and the same API as ``bench_detect.py`` (``replay_file(path, ruleset)``), so
what is measured is what the daemon would hold: parser state, engine state and the report. The input is
written by a child process (so its memory never counts here) and cached under ``bench/out/``:

* ``--failures-per-address`` rounds (default 2, below every default threshold, so nothing is banned and
  every address stays tracked); each round has one ``Failed password for invalid user U from A port P
  ssh2`` line per address, a new pid and port per line, a different user name per round;
* every address in its own IPv4 /24 or IPv6 /64 (``--ipv6-share``), so no aggregation shrinks the state;
* all lines within ``--span-seconds`` of log time (default 60 s), inside every default rule window, so no
  state expires before the end.

``--native`` replays through the native path instead (``replay_stream_native``: the Rust parser and, when
the library has it, the native counting engine); peak RSS is per process, so each path is its own run.

Baseline = this process's RSS after importing the package and loading the rules, right before feeding.
Reported: ``ru_maxrss`` (peak) before and after, current RSS before and after, and bytes per tracked
address = (peak after - RSS before) / addresses. Nothing asserts; the 300 MB target is printed as a verdict.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

START_EPOCH = int(datetime(2026, 11, 28, 20, 0, 0, tzinfo=UTC).timestamp())
CHUNK_LINES = 65_536
# First octets of IPv4 space that is neither private, shared, loopback, link-local, documentation nor
# multicast; 64 of them give every one of 4M addresses its own /24.
_V4_FIRST = tuple(o for o in range(11, 224) if o not in {100, 127, 169, 172, 192, 198, 203})[:64]
_NAMES = ("admin", "test", "oracle", "ubuntu", "postgres", "git", "guest", "support")


def address(i: int, ipv6_share: float) -> str:
    """The ``i``-th distinct attacking address: its own /24 (IPv4) or its own /64 (IPv6)."""
    if ipv6_share > 0 and i % 1000 < ipv6_share * 1000:
        return f"2001:db8:{(i >> 15) + 1:x}:{(i & 0x7FFF) + 1:x}::{(i % 250) + 1:x}"  # no zero group: canonical
    first = _V4_FIRST[i % len(_V4_FIRST)]
    net = i // len(_V4_FIRST)
    return f"{first}.{net >> 8 & 0xFF}.{net & 0xFF}.{(i * 37) % 254 + 1}"


def spray_lines(addresses: int, failures: int, span_s: float, ipv6_share: float) -> Any:
    """Yield RFC 3339 auth.log lines: ``failures`` rounds of one failed password per address."""
    total = addresses * failures
    step_us = max(int(span_s * 1_000_000 / max(total, 1)), 1)
    now_us = START_EPOCH * 1_000_000
    pid, sec, stamp = 1000, -1, ""
    for rnd in range(failures):
        name = _NAMES[rnd % len(_NAMES)]
        for i in range(addresses):
            if now_us // 1_000_000 != sec:
                sec = now_us // 1_000_000
                stamp = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
            pid = pid + 1 if pid < 4_194_000 else 1000
            port = 32768 + (i * 7 + rnd) % 28000
            msg = f"Failed password for invalid user {name} from {address(i, ipv6_share)} port {port} ssh2"
            yield f"{stamp}.{now_us % 1_000_000:06d}+00:00 bastion sshd[{pid}]: {msg}\n"
            now_us += step_us


def write_input(path: Path, addresses: int, failures: int, span_s: float, ipv6_share: float) -> None:
    """Write the spray file in large chunks (runs in the child process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf: list[str] = []
    with path.open("w", encoding="ascii", newline="\n") as fh:
        for line in spray_lines(addresses, failures, span_s, ipv6_share):
            buf.append(line)
            if len(buf) >= CHUNK_LINES:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))


def ensure_input(args: argparse.Namespace) -> Path:
    """The cached input file for these arguments, written by a child process when missing."""
    if args.file is not None:
        return Path(args.file)
    shape = f"{args.addresses}x{args.failures_per_address}-v6_{args.ipv6_share:g}-{args.span_seconds:g}s"
    tag = common.source_tag(inspect.getsource(address), inspect.getsource(spray_lines))
    path = common.OUT_DIR / f"spray-{shape}-{tag}.log"
    if not path.exists():
        print(f"writing {path.relative_to(common.REPO_ROOT)} in a child process ...", file=sys.stderr)
        tmp = path.with_name(path.name + ".part")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--write-input", str(tmp), *_input_args(args)]
        subprocess.run(cmd, check=True)
        tmp.replace(path)
    return path


def _input_args(args: argparse.Namespace) -> list[str]:
    return [
        "--addresses", str(args.addresses),
        "--failures-per-address", str(args.failures_per_address),
        "--span-seconds", str(args.span_seconds),
        "--ipv6-share", str(args.ipv6_share),
    ]  # fmt: skip


def _native_replay() -> Any:
    """``replay_file`` through the native path, or a string saying why there is none."""
    from bastion_guard.native import load, replay_stream_native  # noqa: PLC0415

    library, description = load()
    if library is None:
        return description

    def replay(path: Path, ruleset: Any) -> Any:
        with path.open("rb") as stream:
            return replay_stream_native(stream, str(path), path.stat().st_mtime, ruleset, library=library)

    return replay


def measure(path: Path, rules: Path, native: bool) -> dict[str, Any]:
    """Baseline, replay once, and the RSS readings around it."""
    api = common.load_detection_api()
    if isinstance(api, str):
        return {"status": api, "baseline_rss_bytes": common.current_rss_bytes()}
    ruleset = api.load_rules(rules)
    replay_file = _native_replay() if native else api.replay_file
    if isinstance(replay_file, str):
        return {"status": replay_file, "baseline_rss_bytes": common.current_rss_bytes()}
    gc.collect()
    before = {"peak_rss_bytes": common.peak_rss_bytes(), "rss_bytes": common.current_rss_bytes()}
    t0 = time.perf_counter()
    report = replay_file(path, ruleset)
    elapsed = time.perf_counter() - t0
    after = {"peak_rss_bytes": common.peak_rss_bytes(), "rss_bytes": common.current_rss_bytes()}
    return {
        "status": "ok",
        "before": before,
        "after": after,
        "replay_s": elapsed,
        "report": common.summarize_report(report),
        "rule_events": _rule_events(report),
    }


def _rule_events(report: Any) -> dict[str, int]:
    """Events each rule saw, when the report carries ``rule_stats`` (a check that the engine was fed)."""
    stats = getattr(report, "rule_stats", None) or {}
    return {name: int(getattr(s, "events", 0)) for name, s in stats.items()}


def print_result(args: argparse.Namespace, path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Print the readings and return the derived numbers."""
    n = args.addresses
    size_mb = path.stat().st_size / 1e6
    print(f"input: {path}  ({n:,} addresses x {args.failures_per_address} failures, {size_mb:.1f} MB)")
    if result["status"] != "ok":
        print(f"baseline RSS {result['baseline_rss_bytes'] / 1e6:.1f} MB; ours: {result['status']}")
        return {}
    b, a = result["before"], result["after"]
    growth = a["peak_rss_bytes"] - b["rss_bytes"]
    derived = {
        "engine_growth_bytes": growth,
        "bytes_per_address": growth / n,
        "retained_after_bytes": a["rss_bytes"] - b["rss_bytes"],
        "target_bytes": args.target_mb * 1_000_000,
        "meets_target": a["peak_rss_bytes"] < args.target_mb * 1_000_000,
    }
    print(f"{'':<24}{'before':>12}{'after':>12}")
    for label, key in (("peak RSS (ru_maxrss)", "peak_rss_bytes"), ("current RSS", "rss_bytes")):
        print(f"{label:<24}{b[key] / 1e6:>9.1f} MB{a[key] / 1e6:>9.1f} MB")
    print(f"replay: {result['replay_s']:.1f} s; rule events: {result['rule_events']}")
    print(f"report: {result['report']}")
    print(f"growth while tracking {n:,} addresses: {growth / 1e6:.1f} MB = {growth / n:,.0f} bytes per address")
    verdict = "meets" if derived["meets_target"] else "MISSES"
    print(f"peak RSS {a['peak_rss_bytes'] / 1e6:.1f} MB {verdict} the target of < {args.target_mb} MB")
    return derived


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--addresses", type=int, default=1_000_000, help="distinct attacking addresses")
    p.add_argument("--failures-per-address", type=int, default=2, help="failed logins per address (default 2)")
    p.add_argument("--span-seconds", type=float, default=60.0, help="log time covered by all lines")
    p.add_argument("--ipv6-share", type=float, default=0.1, help="share of IPv6 addresses (default 0.1)")
    p.add_argument("--native", action="store_true", help="replay through the native path (parser and engine)")
    p.add_argument("--file", type=Path, default=None, help="replay this file instead of the generated one")
    p.add_argument("--rules", type=Path, default=common.RULES_DIR, help="rules directory (default: rules/)")
    p.add_argument("--target-mb", type=int, default=300, help="peak RSS target in MB (10^6 bytes)")
    p.add_argument("--json", type=Path, default=common.OUT_DIR / "memory.json")
    p.add_argument("--write-input", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.addresses < 1 or args.failures_per_address < 1 or args.span_seconds <= 0:
        p.error("--addresses and --failures-per-address must be >= 1, --span-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Write the input (child), or measure and report (parent)."""
    args = parse_args(argv)
    if args.write_input is not None:
        write_input(args.write_input, args.addresses, args.failures_per_address, args.span_seconds, args.ipv6_share)
        return 0
    path = ensure_input(args)
    result = measure(path, args.rules, args.native)
    derived = print_result(args, path, result)
    common.write_json(
        args.json,
        {
            "benchmark": "memory",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": common.machine_info(),
            "input": {
                "path": str(path),
                "bytes": path.stat().st_size,
                **vars(args) | {"json": None, "file": None},
            },
            "result": result,
            "derived": derived,
        },
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
