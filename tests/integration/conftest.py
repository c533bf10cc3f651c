"""Fixtures that run real parts: a private rsyslogd, real sshd on 127.0.0.1, a throw-away local user.

Everything is module-scoped (one set of daemons per test module) and torn down in finalizers, also when
a test or the setup itself fails: processes are killed by pid, the user is deleted, the temp dir removed.
The fixtures skip, with the reason, when not root or when sshd, rsyslogd, sshpass or unshare are missing;
CI installs them (see realparts.REQUIRED_TOOLS), so there they run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import realparts


@pytest.fixture(scope="session")
def real_parts() -> None:
    """Skip unless this machine can run real sshd/rsyslogd tests (root, tools, mount namespaces)."""
    reason = realparts.missing_requirements()
    if reason is not None:
        pytest.skip(f"real sshd/rsyslog tests: {reason}")


@pytest.fixture(scope="module")
def real_workdir(real_parts: None) -> Iterator[Path]:
    """A 0755 temp dir for sockets, configs, keys and homes; removed afterwards."""
    workdir = realparts.make_workdir()
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def real_rsyslog(real_workdir: Path) -> Iterator[realparts.Rsyslog]:
    """``rsyslogd -n`` on a private imuxsock socket, writing auth.log (RFC 3339) and auth.trad.log."""
    with realparts.running_rsyslog(real_workdir) as rs:
        yield rs


@pytest.fixture(scope="module")
def real_user(real_workdir: Path) -> Iterator[realparts.TempUser]:
    """A temp local account (random name, password field ``*``, an authorised ed25519 key)."""
    with realparts.temp_user(real_workdir) as user:
        yield user


@pytest.fixture(scope="module")
def real_sshds(
    real_workdir: Path, real_rsyslog: realparts.Rsyslog, real_user: realparts.TempUser
) -> Iterator[dict[str, realparts.Sshd]]:
    """Three real sshd logging through syslog into ``real_rsyslog``: UsePAM no, UsePAM yes, MaxAuthTries 1."""
    with realparts.running_servers(real_workdir, real_rsyslog, real_user) as servers:
        yield servers


@pytest.fixture(scope="module")
def sshd_capture(
    real_rsyslog: realparts.Rsyslog,
    real_sshds: dict[str, realparts.Sshd],
    real_user: realparts.TempUser,
    tmp_path_factory: pytest.TempPathFactory,
) -> realparts.Capture:
    """The hostile-login scenario, run once per module; its log snapshots stay in pytest's tmp dir."""
    return realparts.run_scenario(real_rsyslog, real_sshds, real_user, tmp_path_factory.mktemp("real_sshd"))
