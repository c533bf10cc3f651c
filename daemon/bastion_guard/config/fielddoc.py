"""Field metadata that documents a ``bastiond.yaml`` key where the key is modelled: on its dataclass field.

``bastionctl config-reference`` (:mod:`bastion_guard.runtime.config_reference`) renders these, and the
tests load every example through ``load_config``; so the reference can drift neither from the model nor
from the parser. Dependency-free on purpose: the sink configurations (``shipping/*_config.py``) use it,
and ``runtime/config.py`` imports them, so it cannot live in ``runtime/config.py`` without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DOCS = "docs"  # metadata key: the KeyDoc entries of a field
INTERNAL = "internal"  # metadata key: why a field is not a key of its own


@dataclass(frozen=True, slots=True)
class KeyDoc:
    """One documented key.

    ``key`` is the path written in ``bastiond.yaml`` (``metrics.port``, ``sinks[].hosts``), ``example`` a
    YAML snippet that sets it, ``default`` the default in words when the field's own default does not say
    it well (None: derived from the field).
    """

    key: str
    text: str
    example: str
    default: str | None = None


def doc(key: str, text: str, example: str, *, default: str | None = None) -> dict[str, object]:
    """Metadata for a field that is one key."""
    return docs(KeyDoc(key, text, example, default))


def docs(*entries: KeyDoc) -> dict[str, object]:
    """Metadata for a field written as several keys (a secret's ``<name>_file`` and ``<name>_env``)."""
    return {DOCS: entries}


def internal(reason: str) -> dict[str, object]:
    """Metadata for a field that is no key of its own (its keys are documented elsewhere); ``reason`` says why."""
    return {INTERNAL: reason}


def key_docs(metadata: Mapping[str, object]) -> tuple[KeyDoc, ...]:
    """The KeyDoc entries in a field's metadata (none for an undocumented field)."""
    entries = metadata.get(DOCS, ())
    return tuple(entry for entry in entries if isinstance(entry, KeyDoc)) if isinstance(entries, tuple) else ()
