"""spool: and sinks: in bastiond.yaml: located errors, defaults, secrets by reference and never shown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bastion_guard.errors import ConfigError
from bastion_guard.runtime.config import load_config
from bastion_guard.shipping.secrets import SecretError, SecretRef
from bastion_guard.shipping.spool import Policy


def write(tmp_path: Path, text: str) -> Path:
    """A bastiond.yaml with ``text``."""
    path = tmp_path / "bastiond.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_sinks_and_spool_are_read(tmp_path: Path) -> None:
    """A full entry becomes typed configuration; secrets stay references."""
    key = tmp_path / "es.key"
    key.write_text("c2VjcmV0\n")
    config = load_config(write(tmp_path, f"""
        spool: {{max_bytes: 64MiB, max_records: 1000, policy: drop_newest, backoff_max_secs: 5}}
        sinks:
          - {{type: elasticsearch, name: es-prod, hosts: [https://es.example.com:9200], api_key_file: {key},
              namespace: prod, retention_days: 30}}
    """))
    assert (config.spool.max_bytes, config.spool.max_records, config.spool.policy) == (
        64 * 1024**2, 1000, Policy.DROP_NEWEST)
    (sink,) = config.sinks
    assert (sink.type, sink.name, sink.options.namespace, sink.options.retention_days) == (
        "elasticsearch", "es-prod", "prod", 30)
    assert sink.options.api_key == SecretRef(key)
    assert sink.options.api_key.load().reveal() == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(sink.options.api_key.load())


def test_no_sinks_means_nothing_configured(tmp_path: Path) -> None:
    """Without sinks: defaults, an empty tuple (the daemon then opens no spool)."""
    config = load_config(write(tmp_path, "firewall: {backend: dry-run}\n"))
    assert config.sinks == () and config.spool.policy is Policy.DROP_OLDEST


@pytest.mark.parametrize(("text", "expected"), [
    ("sinks:\n  - {type: kafka}\n", "bastiond.yaml:2:6: sinks[0].type: must be one of elasticsearch"),
    ("sinks:\n  - {name: es}\n", "bastiond.yaml:2:5: sinks[0].type: is required"),
    ("sinks:\n  - {type: elasticsearch}\n", "sinks[0].hosts: is required"),
    ("sinks:\n  - {type: elasticsearch, hosts: [es:9200]}\n", "sinks[0].hosts: 'es:9200' is not an http"),
    ("sinks:\n  - {type: elasticsearch, hosts: ['https://u:p@es']}\n", "credentials do not belong in the URL"),
    ("sinks:\n  - {type: elasticsearch, hosts: [http://es], password: hunter2, username: u}\n",
     "sinks[0].password: secrets are not written inline"),
    ("sinks:\n  - {type: elasticsearch, hosts: [http://es], namespace: My-NS}\n", "sinks[0].namespace: must be"),
    ("sinks:\n  - {type: elasticsearch, hosts: [http://es], hostz: 1}\n", "bastiond.yaml:2:47: sinks[0].hostz: unknown key"),
    ("sinks:\n  - {type: elasticsearch, hosts: [http://a]}\n  - {type: elasticsearch, hosts: [http://b]}\n",
     "bastiond.yaml:3:5: sinks[1].name: 'elasticsearch' is used by another sink"),
    ("spool: {policy: block}\n", "bastiond.yaml:1:9: spool.policy: must be one of drop_oldest, drop_newest"),
    ("spool: {max_bytes: lots}\n", "spool.max_bytes: must be a size in bytes"),
])
def test_mistakes_are_reported_with_file_line_column_and_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake names where it is; a secret written inline is refused and never echoed."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_check_config_validates_sinks(tmp_path: Path) -> None:
    """bastiond --check-config fails with the located problem and exit 2."""
    path = write(tmp_path, "sinks:\n  - {type: elasticsearch, hosts: [ftp://es]}\n")
    result = subprocess.run([sys.executable, "-m", "bastion_guard.cli.bastiond", "--config", str(path),
                             "--check-config"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "bastiond.yaml:2:27: sinks[0].hosts: 'ftp://es' is not an http" in result.stderr


def test_a_missing_secret_names_the_place_not_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreadable file or empty variable: a clear error that says where to look."""
    with pytest.raises(SecretError, match=r"cannot read secret file .*missing"):
        SecretRef(tmp_path / "missing").load()
    monkeypatch.setenv("BASTION_TEST_EMPTY", "")
    with pytest.raises(SecretError, match="environment variable BASTION_TEST_EMPTY is empty"):
        SecretRef(env="BASTION_TEST_EMPTY").load()
