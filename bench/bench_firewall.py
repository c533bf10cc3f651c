#!/usr/bin/env python3
"""Cost of enforcement: restore, batched bans and single bans through the real firewall backends.

Each backend runs in its own network namespace (``bgbench-<random>``, another prefix with ``--netns-prefix``;
deleted afterwards), so the host firewall is never touched. Needs root, ``ip`` and ``nft`` (and
``ipset``/``iptables`` for that backend; missing tools skip the backend with the reason). Per backend, in
order:

1. ``start()``, then ``restore()`` of ``--restore`` bans (80% IPv4 addresses, 20% IPv6 /64) in one go;
2. ``--batched`` more bans through ``ban()`` in batches of ``--batch-size``, on top of that set -> bans/s;
3. ``--single`` calls of ``ban()`` with one element each -> latency p50/p99/max;
4. ``unban()`` of the batched ones in batches of ``--batch-size`` -> unbans/s; one ``list()`` of everything.

Floors, measured the same way: one ``ip netns exec NS nft -f -`` (or ``ipset restore``) with an empty
script, i.e. the process cost every call pays. With ``--interval-baseline N`` (default 10,000; 0 skips)
the nft layout with one *interval* set per family is measured at N elements for comparison (why the
backend uses hash sets per prefix length: nft 1.0.6 reloads interval sets on every change).
Results go to stdout and ``bench/out/firewall.json``. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import common

common.ensure_import_path()

from bastion_guard.actions import BanElement, Firewall, make_firewall  # noqa: E402

BACKENDS = {"nftables": ("nft",), "ipset": ("ipset", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore")}


def target(i: int, salt: int) -> str:
    """The ``i``-th distinct ban target of a series (``salt`` keeps series apart)."""
    if i % 5 == 4:
        return f"2001:db8:{salt * 0x100 + (i >> 16):x}:{i & 0xFFFF:x}::/64"
    return f"{10 + salt}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def series(count: int, salt: int, timeout: float = 3600) -> list[BanElement]:
    """``count`` distinct bans."""
    return [BanElement(target(i, salt), timeout) for i in range(count)]


def run(*argv: str, stdin: str = "") -> None:
    """Run argv (no shell); raise with stderr on failure."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@contextlib.contextmanager
def namespace(prefix: str) -> Iterator[str]:
    """A fresh namespace ``<prefix>-<random>``, always deleted."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    run("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def floor_ms(ns: str, backend: str, repeat: int = 50) -> float:
    """Median ms of a no-op call of the backend's tool in the namespace (process + netns exec cost)."""
    argv = ["ip", "netns", "exec", ns, *(["nft", "-f", "-"] if backend == "nftables" else ["ipset", "restore"])]
    return statistics.median(timed(lambda: run(*argv)) for _ in range(repeat)) * 1000


def measure_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one backend, in its own namespace."""
    with namespace(args.netns_prefix) as ns:
        fw: Firewall = make_firewall(backend, netns=ns)
        result: dict[str, Any] = {"start_s": timed(fw.start)}
        restore = series(args.restore, salt=0)
        result["restore_count"] = len(restore)
        result["restore_s"] = timed(lambda: fw.restore(restore))
        batched = series(args.batched, salt=1)
        chunks = [batched[i : i + args.batch_size] for i in range(0, len(batched), args.batch_size)]
        took = sum(timed(partial(fw.ban, chunk)) for chunk in chunks)
        result.update(batched_count=len(batched), batch_size=args.batch_size, batched_s=took)
        result["bans_per_s"] = len(batched) / took if took else None
        singles = series(args.single, salt=2)
        latencies = [timed(partial(fw.ban, [element])) * 1000 for element in singles]
        result["single_ms"] = {
            "calls": len(latencies),
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
        }
        listed: list[tuple[str, float]] = []
        result["list_s"] = timed(lambda: listed.extend(fw.list()))
        result["list_count"] = len(listed)
        targets = [element.target for element in batched]
        steps = range(0, len(targets), args.batch_size)
        took = sum(timed(partial(fw.unban, targets[i : i + args.batch_size])) for i in steps)
        result["unbans_per_s"] = len(targets) / took if took else None
        result["floor_call_ms"] = floor_ms(ns, backend)
        fw.remove()
    return result


def interval_baseline(size: int, prefix: str) -> dict[str, Any]:
    """The nft layout with interval sets (one per family), at ``size`` elements: what hash sets avoid."""
    with namespace(prefix) as ns:
        nft = ["ip", "netns", "exec", ns, "nft", "-f", "-"]
        run(*nft, stdin="add table inet t\nadd set inet t s { type ipv4_addr; flags interval, timeout; }\n")
        fill = ", ".join(f"{target(i, 0)} timeout 1h" for i in range(size) if i % 5 != 4)
        out: dict[str, Any] = {"size": size}
        out["fill_s"] = timed(lambda: run(*nft, stdin=f"add element inet t s {{ {fill} }}\n"))
        new = [target(i, 1) for i in range(500) if i % 5 != 4]
        add = f"add element inet t s {{ {', '.join(f'{a} timeout 1h' for a in new)} }}\n"
        out["add_batch_s"] = timed(lambda: run(*nft, stdin=add))
        out["delete_batch_s"] = timed(lambda: run(*nft, stdin=f"delete element inet t s {{ {', '.join(new)} }}\n"))
        out["batch"] = len(new)
        out["single_add_ms"] = timed(lambda: run(*nft, stdin="add element inet t s { 192.0.2.1 timeout 1h }\n")) * 1000
    return out


def print_table(results: dict[str, dict[str, Any]], baseline: dict[str, Any] | None) -> None:
    """One column per backend."""
    names = list(results)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("restore (one call), bans", lambda r: f"{r['restore_count']:,}"),
        ("restore seconds", lambda r: f"{r['restore_s']:.2f}"),
        ("batched bans/s", lambda r: f"{r['bans_per_s']:,.0f} ({r['batched_count']:,}, batch {r['batch_size']})"),
        ("single ban p50 ms", lambda r: f"{r['single_ms']['p50']:.1f}"),
        ("single ban p99 ms", lambda r: f"{r['single_ms']['p99']:.1f}"),
        ("single ban max ms", lambda r: f"{r['single_ms']['max']:.1f}"),
        ("batched unbans/s", lambda r: f"{r['unbans_per_s']:,.0f}"),
        ("list() seconds", lambda r: f"{r['list_s']:.2f} ({r['list_count']:,} bans)"),
        ("floor: no-op call ms", lambda r: f"{r['floor_call_ms']:.1f}"),
    ]
    print(f"{'':<26}" + "".join(f"{name:>30}" for name in names))
    for label, cell in rows:
        cells = (cell(results[name]) if "error" not in results[name] else "-" for name in names)
        print(f"{label:<26}" + "".join(f"{text:>30}" for text in cells))
    for name, result in results.items():
        if "error" in result:
            print(f"{name}: {result['error']}")
    if baseline:
        print(
            f"\nnft interval-set layout at {baseline['size']:,} elements (for comparison): "
            f"add {baseline['batch']} {baseline['add_batch_s']:.2f} s, delete {baseline['batch']} "
            f"{baseline['delete_batch_s']:.2f} s, one add {baseline['single_add_ms']:.0f} ms"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--backends", default="nftables,ipset", help="comma-separated (default: nftables,ipset)")
    p.add_argument("--restore", type=int, default=100_000, help="bans restored in one call (default 100000)")
    p.add_argument("--batched", type=int, default=10_000, help="bans added through batched ban() (default 10000)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--single", type=int, default=200, help="single-element ban() calls timed (default 200)")
    p.add_argument("--interval-baseline", type=int, default=10_000, help="0 skips the interval-set comparison")
    p.add_argument("--json", type=Path, default=common.OUT_DIR / "firewall.json")
    p.add_argument("--netns-prefix", default="bgbench", help="namespace name prefix (default bgbench)")
    args = p.parse_args(argv)
    if min(args.restore, args.batched, args.batch_size, args.single) < 1:
        p.error("counts must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write JSON."""
    args = parse_args(argv)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("bench_firewall: needs root and iproute2 (network namespaces); nothing measured", file=sys.stderr)
        return 1
    results: dict[str, dict[str, Any]] = {}
    for backend in args.backends.split(","):
        absent = [tool for tool in BACKENDS[backend] if shutil.which(tool) is None]
        if absent:
            results[backend] = {"error": f"skipped: missing {', '.join(absent)}"}
            continue
        print(f"measuring {backend} ...", file=sys.stderr)
        results[backend] = measure_backend(backend, args)
    baseline = None
    if args.interval_baseline and shutil.which("nft"):
        print("measuring the interval-set comparison ...", file=sys.stderr)
        baseline = interval_baseline(args.interval_baseline, args.netns_prefix)
    print_table(results, baseline)
    data = {"machine": common.machine_info(), "args": vars(args), "backends": results, "interval_baseline": baseline}
    common.write_json(args.json, data)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
