"""bastionctl deadletter list | show | replay, on a real spool file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion_guard.cli.bastionctl import main
from bastion_guard.shipping.records import RecordKind, action_record
from bastion_guard.shipping.spool import Spool


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A spool with one record delivered to gelf and rejected by es."""
    spool = Spool.open(tmp_path / "spool.db", ["es", "gelf"])
    record = action_record(RecordKind.AUDIT, 1_700_000_000.0, "bastion1", action="step", detail="x")
    spool.append([record])
    spool.complete("es", spool.read("es", 1)[0].seq, [(record, "400 mapper_parsing_exception: bad [detail]")])
    spool.complete("gelf", spool.read("gelf", 1)[0].seq)
    spool.close()
    return tmp_path


def test_list_show_replay(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """List shows the reason, show the record, replay re-queues it for es only and empties the store."""
    assert main(["deadletter", "list", "--state-dir", str(state_dir), "-o", "json"]) == 0
    (letter,) = json.loads(capsys.readouterr().out)
    assert (letter["sink"], letter["reason"]) == ("es", "400 mapper_parsing_exception: bad [detail]")
    assert main(["deadletter", "show", str(letter["number"]), "--state-dir", str(state_dir)]) == 0
    shown = capsys.readouterr().out
    assert "rejected by es" in shown and '"detail": "x"' in shown
    assert main(["deadletter", "replay", "999", "--state-dir", str(state_dir)]) == 1
    assert "no dead letter 999" in capsys.readouterr().err
    assert main(["deadletter", "replay", "--state-dir", str(state_dir)]) == 0
    assert "replayed 1 records" in capsys.readouterr().out
    spool = Spool.open(state_dir / "spool.db", ["es", "gelf"])
    assert [q.record.body["detail"] for q in spool.read("es", 10)] == ["x"]
    assert spool.read("gelf", 10) == []
    assert spool.dead_letters() == []


def test_no_spool_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a spool file (no sinks configured) the command says so."""
    assert main(["deadletter", "list", "--state-dir", str(tmp_path)]) == 1
    assert "no spool at" in capsys.readouterr().err
