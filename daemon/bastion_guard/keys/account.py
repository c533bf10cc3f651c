"""Blocking a departed person's account on the bastion and ending their sessions (argv only).

A locked password alone does not stop public key logins under ``UsePAM yes``; an expired account does
(PAM's account phase), so both are set. Ending sessions also ends their ProxyJump tunnels, which belong
to their sshd session processes.
"""

from __future__ import annotations

import pwd
import shutil

from bastion_guard.keys.commands import run
from bastion_guard.keys.errors import KeyLifecycleError


def lock_account(account: str) -> None:
    """Expire the account and lock its password (``usermod --expiredate 1 -L``); idempotent."""
    _exists(account)
    done = run(["usermod", "--expiredate", "1", "--lock", account])
    if done.returncode != 0:
        raise KeyLifecycleError(f"cannot lock account {account}: {done.said}")


def end_sessions(account: str) -> str:
    """End every process of ``account``: ``loginctl terminate-user``, else ``pkill -KILL -u``; says which."""
    uid = _exists(account)
    if shutil.which("loginctl") is not None:
        done = run(["loginctl", "terminate-user", str(uid)])
        if done.returncode == 0:
            return "loginctl terminate-user"
    done = run(["pkill", "-KILL", "-u", str(uid)])
    if done.returncode not in (0, 1):  # 1: no process matched, which is what we want
        raise KeyLifecycleError(f"cannot end the sessions of {account}: {done.said}")
    return "pkill -KILL -u"


def _exists(account: str) -> int:
    try:
        return pwd.getpwnam(account).pw_uid
    except KeyError:
        raise KeyLifecycleError(f"account {account!r} does not exist on this host") from None
