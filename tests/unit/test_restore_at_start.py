"""The restore at start: every active ban, with the time it has left, into the firewall; the collector paused."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from bastion_guard.actions import ActionError, BanElement, DryRunFirewall
from bastion_guard.runtime.restore import collector_paused, restore_active_bans
from bastion_guard.state.records import BanRecord
from bastion_guard.state.store import StateStore

NOW = 1_800_000_000.0


def _ban(target: str, expires: float) -> BanRecord:
    return BanRecord(target, "sshd-bruteforce", NOW - 60, expires, 1, "test", "local", ((NOW - 61, "auth", 1),))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A state database holding two active bans (one written the long way) and an expired one."""
    opened = StateStore.open(tmp_path / "state.db")
    opened.commit(bans=[_ban("203.0.113.7", NOW + 600), _ban("2001:DB8:1:2::/64", NOW + 90.5),
                        _ban("198.51.100.1", NOW - 1)])
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _collector_back_on() -> Iterator[None]:
    """Whatever a test does to the collector, the next test finds it on."""
    yield
    gc.enable()


def test_active_bans_are_restored_with_the_time_they_have_left(store: StateStore) -> None:
    """Expired bans stay out; each ban ends when it would have, in its canonical spelling."""
    fw = DryRunFirewall(clock=lambda: 0.0)
    assert restore_active_bans(store, fw, NOW) == 2
    assert sorted(fw.list()) == [("2001:db8:1:2::/64", 90.0), ("203.0.113.7", 600.0)]
    assert gc.isenabled()


class _RefusingFirewall(DryRunFirewall):
    def restore(self, elements: Iterable[BanElement]) -> None:
        raise ActionError("nft -f - failed: no")


def test_collector_runs_again_after_a_failed_restore(store: StateStore) -> None:
    """A restore that fails still gives the collector back, and the error reaches the caller."""
    with pytest.raises(ActionError, match="no"):
        restore_active_bans(store, _RefusingFirewall(), NOW)
    assert gc.isenabled()


def test_collector_left_off_when_it_was_off() -> None:
    """The pause does not switch on a collector that someone else turned off."""
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
