"""The detection path of :mod:`bastion_guard.replay` with the native parser in front.

Same input, same report, same decisions as :func:`bastion_guard.replay.replay_stream`, which stays the
reference (``tests/unit/test_native.py`` checks both on whole logs). Two paths:

* native parser and native counting (:class:`~bastion_guard.native.engine.NativeEngine`): the library
  parses a line and counts its event against the rules; Python runs only for the lines it hands back
  (parsed by :class:`LineParser` at their place in the stream and fed to the same engine), for a window
  that reached its count (a decision), and for the sweeps of the rules that count bans;
* native parser, Python counting, when the library has no engine or the rule set uses something it does
  not count: records for events of the kinds a rule counts (built into :class:`Event` and fed), for the
  points where another event moves the engine's sweep clock (:meth:`Engine.advance`), and for the lines
  handed back.

The report's ``parser`` says which path ran, and why.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import BinaryIO

from bastion_guard.events import Event, Kind
from bastion_guard.native.chunks import (
    ENGINE_RECORD,
    NOISE,
    OTHER_PROGRAM,
    OUTCOMES,
    PYTHON,
    SWEEP,
    THRESHOLD,
    BlockText,
    ChunkParser,
    build_engine_event,
    build_event,
)
from bastion_guard.native.context import NativeContext
from bastion_guard.native.engine import NativeEngine, unavailable
from bastion_guard.native.library import NativeLibrary, load
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.reading import decode, iter_blocks
from bastion_guard.replay import Report, replay_stream, tally
from bastion_guard.rules import Engine, RuleSet
from bastion_guard.rules.engine import SWEEP_INTERVAL_SECS

_YOUNG_COLLECTION_EVERY = 100_000  # allocations; see _fewer_collections
# Below this share of lines the library parses itself (a traditional-stamp log, for one), handing lines
# back costs more than it saves: such a stream runs on the Python parser alone.
_MIN_NATIVE_SHARE = 0.5
_SNIFF_BYTES = 1 << 16

def native_share(library: NativeLibrary, sample: bytes) -> float:
    """The share of the whole lines in ``sample`` the library parses without Python (own context)."""
    cut = sample.rfind(b"\n")
    if cut <= 0:
        return 0.0
    block = sample[:cut]
    chunks = ChunkParser(library, NativeContext(library))
    lines = handed_back = 0
    start = 0
    while start <= len(block):
        parsed = chunks.parse(block, start)
        start = parsed.next_start
        lines += parsed.lines
        handed_back += sum(record[2] == PYTHON for record in parsed.records)
    return (lines - handed_back) / lines if lines else 0.0


def choose_path(stream: BinaryIO) -> tuple[NativeLibrary | None, str]:
    """The library to parse ``stream`` with (``None``: the Python parser) and why, judged on its first
    bytes when the stream can show them without consuming them."""
    library, description = load()
    if library is None:
        return None, f"python ({description})"
    peek = getattr(stream, "peek", None)
    if peek is not None:
        share = native_share(library, peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
        if share < _MIN_NATIVE_SHARE:
            return None, f"python (the native parser reads only {share:.0%} of this log's first lines)"
    return library, description


def replay_auto(
    stream: BinaryIO, name: str, reference: float, ruleset: RuleSet, progress: Callable[[int], None] | None = None
) -> Report:
    """:func:`replay_stream_native` when the library is there and suits the stream, else the reference."""
    library, description = choose_path(stream)
    if library is None:
        report = replay_stream(stream, name, reference, ruleset, progress)
        report.parser = description
        return report
    return replay_stream_native(stream, name, reference, ruleset, library=library, progress=progress)


def replay_stream_native(
    stream: BinaryIO,
    name: str,
    reference: float,
    ruleset: RuleSet,
    *,
    library: NativeLibrary,
    progress: Callable[[int], None] | None = None,
    count_natively: bool = True,
) -> Report:
    """:func:`bastion_guard.replay.replay_stream` with the native parser for the lines it knows, and the
    native rules engine when it can count ``ruleset`` (and ``count_natively``: the benchmark compares)."""
    why_not = unavailable(library, ruleset) if count_natively else "not asked to"
    with _fewer_collections():
        if why_not is None:
            engine = NativeEngine(ruleset, library)
            report = _replay_counting(stream, name, reference, engine, library=library, progress=progress)
            report.parser = f"native ({library.path.name}), rules counted natively"
        else:
            report = _replay_parsing(stream, name, reference, Engine(ruleset), library=library, progress=progress)
            report.parser = f"native ({library.path.name}), rules counted in Python: {why_not}"
    return report


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector's youngest generation every 100k allocations instead of every 700.

    A replay allocates a stream of short-lived objects without cycles (records, events, decisions), which
    refcounting frees; each default collection walks them for nothing, 5-10% of the native path's time
    (measured). Cycles are still collected, only less often, so memory stays bounded; the previous
    thresholds come back afterwards."""
    previous = gc.get_threshold()
    gc.set_threshold(_YOUNG_COLLECTION_EVERY, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _replay_counting(
    stream: BinaryIO, name: str, reference: float, engine: NativeEngine, *, library: NativeLibrary,
    progress: Callable[[int], None] | None,
) -> Report:
    """The replay with the native parser and the native counting engine."""
    context = NativeContext(library)
    chunks = ChunkParser(library, context)
    parser = LineParser(reference, context=context)
    report = Report(source=name)
    decisions = report.decisions
    parse, feed, parse_counting = parser.parse, engine.feed, chunks.parse_counting
    handle, source, python_sweeps = engine.handle, engine.source_index(name), engine.sweeps_python_rules
    count = 0  # lines before the current call
    for offset, block, complete in iter_blocks(stream):
        start = 0
        end_of_block = len(block)
        while start <= end_of_block:
            start, lines, records = parse_counting(
                handle, block, start, source=source, base=count, python_sweeps=python_sweeps
            )
            for line_start, line_end, code, epoch, index in records:
                if code == THRESHOLD:  # always the last record of a call
                    decisions.extend(engine.conclude_thresholds())
                elif code == SWEEP:
                    engine.sweep_python_rules(epoch)
                else:  # PYTHON: always the last record of a call
                    number = count + index + 1
                    line = decode(block[line_start:line_end])
                    tally(report, parse(line, name, number), number, line, feed)
            count += lines
        if progress is not None:
            progress(offset + len(block) + complete)
    _add_native_counts(report, list(chunks.counts), chunks.kinds)
    report.lines = count
    report.rule_stats = engine.stats
    return report


def _replay_parsing(
    stream: BinaryIO, name: str, reference: float, engine: Engine, *, library: NativeLibrary,
    progress: Callable[[int], None] | None,
) -> Report:
    """The replay with the native parser and the Python engine."""
    context = NativeContext(library)
    chunks = ChunkParser(library, context, counted=engine.counted_kinds)
    parser = LineParser(reference, context=context)
    report = Report(source=name)
    kinds = chunks.kinds
    decisions = report.decisions
    parse, feed, advance = parser.parse, engine.feed, engine.advance
    parse_chunk = chunks.parse
    count = 0  # lines before the current call
    for offset, block, complete in iter_blocks(stream):
        text = block.decode("latin-1")  # character offsets = byte offsets; native lines are ASCII
        start = 0
        end_of_block = len(block)
        while start <= end_of_block:
            start, lines, records, arena = parse_chunk(
                block, start, engine.next_sweep, SWEEP_INTERVAL_SECS, ENGINE_RECORD
            )
            texts = BlockText(text, arena, kinds)
            for record in records:
                code = record[2]
                if code < OTHER_PROGRAM:
                    found = feed(build_engine_event(record, texts, name, count + record[-1] + 1))
                    if found:
                        decisions.extend(found)
                elif code == SWEEP:
                    advance(record[4])
                else:  # PYTHON: always the last record of a call
                    number = count + record[-1] + 1
                    line = decode(block[record[0] : record[1]])
                    tally(report, parse(line, name, number), number, line, feed)
            count += lines
        if progress is not None:
            progress(offset + len(block) + complete)  # the offset after the block, as replay_stream reports
    _add_native_counts(report, list(chunks.counts), kinds)
    report.lines = count
    report.rule_stats = engine.stats
    return report


def _add_native_counts(report: Report, counts: list[int], kinds: tuple[Kind, ...]) -> None:
    """Fold the library's per-code counts into the report's counters."""
    for index, total in enumerate(counts):
        if not total:
            continue
        code, outcome = divmod(index, 3)
        if code < OTHER_PROGRAM:
            report.events_by_kind[kinds[code]] += total
            report.events_by_outcome[OUTCOMES[outcome]] += total
        elif code == NOISE:
            report.statuses[LineStatus.NOISE.value] += total
        elif code == OTHER_PROGRAM:
            report.statuses[LineStatus.OTHER_PROGRAM.value] += total


def iter_results(
    stream: BinaryIO, name: str, reference: float, library: NativeLibrary
) -> Iterator[tuple[int, Event | LineStatus]]:
    """``(line number, result)`` for every line, as :class:`LineParser` would give with byte offsets as
    positions (what ``bastionctl parse`` uses)."""
    context = NativeContext(library)
    chunks = ChunkParser(library, context, all_lines=True)
    parser = LineParser(reference, context=context)
    kinds = chunks.kinds
    statuses = {OTHER_PROGRAM: LineStatus.OTHER_PROGRAM, NOISE: LineStatus.NOISE}
    number = 0
    for offset, block, _complete in iter_blocks(stream):
        text = block.decode("latin-1")
        start = 0
        while start <= len(block):
            start, _lines, records, arena = chunks.parse(block, start)
            texts = BlockText(text, arena, kinds)
            for record in records:
                number += 1
                code = record[2]
                position = offset + record[0]
                if code < OTHER_PROGRAM:
                    yield number, build_event(record, texts, name, position)
                elif code == PYTHON:
                    yield number, parser.parse(decode(block[record[0] : record[1]]), name, position)
                else:
                    yield number, statuses[code]
