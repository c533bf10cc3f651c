"""The configuration reference is generated from the config model and agrees with the parser.

docs/configuration.md must equal the generator's output; every documented example must load through
``load_config`` and change the configuration; every misspelled key must be refused; and every field of
the model must be documented (a new key without a doc fails here).

Sink keys are documented per sink type (``sinks[].timeout_secs`` means something per type), so a key is
unique per (section, key). Examples name files under ``/etc/bastion-guard/`` as an operator would; the
loader checks that CA and certificate files are readable, so the tests create them under ``tmp_path``
and point the example there.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bastion_guard.errors import ConfigError
from bastion_guard.runtime import config_reference
from bastion_guard.runtime.config import default_config, load_config

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "configuration.md"
KEYS = config_reference.documented_keys()
IDS = [f"{key.section}:{key.key}" if key.section else key.key for key in KEYS]
_ETC = "/etc/bastion-guard/"


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    """Load ``text`` with the files it names under /etc/bastion-guard/ created in ``tmp_path/etc``."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    for name in re.findall(re.escape(_ETC) + r"([\w.-]+)", text):
        (etc / name).write_text("placeholder\n")
    path = tmp_path / "bastiond.yaml"
    path.write_text(text.replace(_ETC, f"{etc}/") + "\n")
    return load_config(path)


def _comparable(config: object) -> object:
    return dataclasses.replace(config, origin="")  # type: ignore[type-var]


def test_committed_reference_is_the_generated_one() -> None:
    """docs/configuration.md is exactly what ``bastionctl config-reference`` prints (regenerate, never edit)."""
    result = subprocess.run([sys.executable, "-m", "bastion_guard.cli.bastionctl", "config-reference"],
                            capture_output=True, text=True, check=True, timeout=60)
    assert REFERENCE.read_text() == result.stdout, "regenerate: bastionctl config-reference > docs/configuration.md"


def test_every_field_of_the_model_is_documented() -> None:
    """A field added to the config dataclasses without ``metadata=doc(...)`` fails here."""
    assert config_reference.undocumented_fields() == []
    assert len({(key.section, key.key) for key in KEYS}) == len(KEYS), "a key is documented twice"
    assert {key.section for key in KEYS} == {"", *config_reference.SECTION_INTROS}


@pytest.mark.parametrize("key", KEYS, ids=IDS)
def test_documented_example_is_accepted_and_takes_effect(key: config_reference.DocumentedKey, tmp_path: Path) -> None:
    """Each example loads without a problem and gives a configuration different from the defaults."""
    loaded = _load(tmp_path, key.example)
    assert _comparable(loaded) != _comparable(default_config()), f"{key.example!r} changed nothing"


@pytest.mark.parametrize("key", KEYS, ids=IDS)
def test_misspelled_key_is_rejected(key: config_reference.DocumentedKey, tmp_path: Path) -> None:
    """The example with its key's last part misspelled is refused, naming the misspelled key path."""
    *parents, last = key.key.replace("[]", "[0]").split(".")
    assert f"{last}:" in key.example, key.example
    typo = key.example.replace(f"{last}:", f"{last}x:", 1)
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, typo)
    wrong = ".".join([*parents, f"{last}x"])
    messages = [f"{problem.key}: {problem.message}" for problem in error.value.problems]
    assert any(message.endswith("unknown key") and wrong in message for message in messages), messages


def test_commented_default_config_loads_as_the_defaults(tmp_path: Path) -> None:
    """The installed bastiond.yaml (all comments) runs on the defaults, and names every key."""
    text = config_reference.render_commented_config()
    assert _comparable(_load(tmp_path, text)) == _comparable(default_config())
    for key in KEYS:
        assert f"# {key.example}\n" in text


@pytest.mark.parametrize("key", KEYS, ids=IDS)
def test_uncommenting_an_example_in_the_default_config_works(key: config_reference.DocumentedKey,
                                                             tmp_path: Path) -> None:
    """An operator who uncomments one example line of the installed file gets a valid configuration."""
    text = config_reference.render_commented_config().replace(f"# {key.example}\n", f"{key.example}\n", 1)
    assert _comparable(_load(tmp_path, text)) != _comparable(default_config())
