"""Reading typed values out of a located YAML mapping, collecting every problem instead of stopping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from bastion_guard.config.yamlsrc import Located
from bastion_guard.durations import parse_duration
from bastion_guard.errors import ConfigProblem, Location

T = TypeVar("T")
_MISSING = object()


class Fields:
    """Typed access to one mapping; unknown keys and wrong types become :class:`ConfigProblem` s."""

    def __init__(self, mapping: object, path: str, problems: list[ConfigProblem], location: Location) -> None:
        self._path = path
        self._problems = problems
        self._seen: set[str] = set()
        if isinstance(mapping, Located):
            self._mapping: Located | None = mapping
        else:
            self._mapping = None
            problems.append(ConfigProblem(location, path, "expected a mapping (key: value)"))

    @property
    def ok(self) -> bool:
        """Whether the value was a mapping at all."""
        return self._mapping is not None

    def where(self, key: str | None = None) -> Location:
        """Where ``key`` (or the mapping) was written."""
        if self._mapping is None:
            return Location("")
        return self._mapping.where(key) if key else self._mapping.location

    def key_path(self, key: str) -> str:
        """``parent.key`` for messages."""
        return f"{self._path}.{key}" if self._path else key

    def problem(self, key: str, message: str) -> None:
        """Record a problem about ``key``."""
        self._problems.append(ConfigProblem(self.where(key), self.key_path(key), message))

    def raw(self, key: str) -> Any:
        """The value of ``key`` as written, or a private missing marker."""
        self._seen.add(key)
        if self._mapping is None or key not in self._mapping:
            return _MISSING
        return self._mapping[key]

    def has(self, key: str) -> bool:
        """Whether ``key`` was written."""
        return self._mapping is not None and key in self._mapping

    def get(self, key: str, kind: type[T], default: T, *, required: bool = False) -> T:
        """The value of ``key`` if it has type ``kind``; else record a problem and return ``default``."""
        value = self.raw(key)
        if value is _MISSING:
            if required and self._mapping is not None:
                self.problem(key, "is required")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"must be {_type_name(kind)}, not {_type_name(type(value))}")
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float | None = None) -> float:
        """A number, at least ``minimum``."""
        value = self.get(key, float, default)
        if minimum is not None and value < minimum:
            self.problem(key, f"must be at least {minimum:g}")
            return default
        return value

    def count(self, key: str, default: int, *, minimum: int = 1, required: bool = False) -> int:
        """A whole number, at least ``minimum``."""
        value = self.get(key, int, default, required=required)
        if value < minimum:
            self.problem(key, f"must be at least {minimum}")
            return default
        return value

    def duration(self, key: str, default: float, *, required: bool = False) -> float:
        """A duration in seconds (``600``, ``10m``, ``4h``...)."""
        value = self.raw(key)
        if value is _MISSING:
            if required and self._mapping is not None:
                self.problem(key, "is required")
            return default
        try:
            return parse_duration(value)
        except ValueError as error:
            self.problem(key, str(error))
            return default

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings (a single string is taken as a list of one)."""
        value = self.raw(key)
        if value is _MISSING:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, "must be a list of strings")
            return ()
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of ``choices``."""
        value = self.get(key, str, default)
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return value

    def nested(self, key: str) -> Fields | None:
        """The mapping under ``key``, if written."""
        value = self.raw(key)
        if value is _MISSING:
            return None
        return Fields(value, self.key_path(key), self._problems, self.where(key))

    def child(self, value: object, path: str, location: Location) -> Fields:
        """Fields over another value (a list item), reporting into the same problem list."""
        return Fields(value, path, self._problems, location)

    def each(self, key: str, convert: Callable[[str, Location], T | None]) -> tuple[T, ...]:
        """Convert every string of the list under ``key``; ``convert`` returns ``None`` on a bad item."""
        results = []
        for item in self.strings(key):
            converted = convert(item, self.where(key))
            if converted is not None:
                results.append(converted)
        return tuple(results)

    def reject_unknown(self) -> None:
        """Record every key that no reader asked for: a typo must not pass silently."""
        if self._mapping is None:
            return
        for key in self._mapping:
            if key not in self._seen:
                self.problem(key, "unknown key")


def _type_name(kind: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
            dict: "a mapping", Located: "a mapping"}.get(kind, kind.__name__)
