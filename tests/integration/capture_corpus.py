#!/usr/bin/env python3
"""Capture tests/corpus/real_sshd_{rfc3339,traditional}.log from a real sshd (run by hand, as root).

    sudo python3 tests/integration/capture_corpus.py [--out DIR]

Runs the scenario of test_real_sshd_injection.py (realparts.captured_session: three real sshd, a private
rsyslogd, hostile logins from a real ssh client and raw TCP clients), then writes both log files with
the machine's host name replaced by ``bastion``, the random temp user by ``bgit_operator`` (same length)
and the temp dir by a fixed path, so that unit tests can use real lines without root. Also refreshes the
capture section of tests/corpus/README.md (versions, date, measured line lengths, the hostile names).
Nothing else on the machine changes: everything the run starts or creates is removed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import realparts as rp

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
HOST = "bastion"
USER = "bgit_operator"  # same length as bgit_ + 8 hex digits: line lengths stay as sshd wrote them
BEGIN, END = "<!-- real_sshd capture: begin -->", "<!-- real_sshd capture: end -->"
_HEADER = re.compile(
    rb"^(?P<stamp>\d{4}-\d\d-\d\dT\S+|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) ", re.MULTILINE
)


def anonymise(data: bytes, capture: rp.Capture) -> bytes:
    """Fixed host name, user name and temp dir; everything else exactly as rsyslogd wrote it."""
    data = _HEADER.sub(lambda m: m["stamp"] + b" " + HOST.encode() + b" ", data)
    workdir = str(capture.workdir).encode()
    fixed_dir = (str(capture.workdir.parent) + "/bg-it-corpus").encode()
    return data.replace(workdir, fixed_dir).replace(capture.user.name.encode(), USER.encode())


def package_version(name: str) -> str:
    """The installed Debian package version, or "?"."""
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def stats(path: Path) -> str:
    """Line count, longest line and message, and how many messages sshd cut, for the README."""
    lines = rp.read_log(path)
    cut = sum(line.program == "sshd" and len(line.msg) >= rp.SYSLOG_MSG_LIMIT for line in lines)
    longest_line, longest_msg = max(len(line.text) for line in lines), max(len(line.msg) for line in lines)
    return (
        f"{len(lines)} lines, longest line {longest_line} characters, longest message {longest_msg}, "
        f"{cut} messages cut at {rp.SYSLOG_MSG_LIMIT}"
    )


def describe(name: str) -> str:
    """A Python expression for ``name``, a long run of one short unit written as ``unit * count``."""
    for size in range(1, 5):
        unit, count = name[:size], 0
        while name.startswith(unit * (count + 1)):
            count += 1
        if count * size >= 16:
            text = f"{unit!r} * {count} + {name[count * size :]!r}"
            break
    else:
        text = repr(name)
    return text.replace("|", "\\|")  # a '|' would end the Markdown table cell


def readme_section(capture: rp.Capture, files: dict[str, Path]) -> str:
    """The generated README section describing this capture."""
    debian = Path("/etc/debian_version")
    release = debian.read_text().strip() if debian.exists() else "?"
    banner = next((r.output for r in capture.results if r.output.startswith("SSH-2.0-")), "?")
    names = "\n".join(
        f"| `{planned.label}` | `` {describe(planned.hostile.name)} `` |"
        for planned in capture.plan
        if planned.hostile is not None
    )
    listing = "\n".join(f"- `{path.name}` ({label}): {stats(path)}" for label, path in files.items())
    return f"""{BEGIN}
## real_sshd_rfc3339.log, real_sshd_traditional.log

Genuine lines from a real OpenSSH sshd, written by a real rsyslogd, made by
`sudo python3 tests/integration/capture_corpus.py` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
(the same scenario as `tests/integration/test_real_sshd_injection.py`).

- openssh-server {package_version("openssh-server")} (banner `{banner}`),
  rsyslog {package_version("rsyslog")}, Debian {release}.
- Three sshd on 127.0.0.1, LogLevel VERBOSE, logging through syslog() (private /dev/log) into one rsyslogd:
  UsePAM no, UsePAM yes, and UsePAM no with MaxAuthTries 1. `AllowUsers {USER}`, `PermitRootLogin no`.
- `real_sshd_rfc3339.log`: `RSYSLOG_FileFormat` (Debian 12 default, RFC 3339 with microseconds);
  `real_sshd_traditional.log`: `RSYSLOG_TraditionalFileFormat`. Same messages, same order, line for line.
- Rewritten after capture: host name -> `{HOST}`, the random temp user -> `{USER}` (same length), the temp
  dir -> `.../bg-it-corpus`. Nothing else: timestamps, pids, ports and sshd's escaping are as written.
- The only real client is **127.0.0.1**: every other address in these files was chosen by the "attacker".
  Real ports are the listening ports (`Server listening on ...`) and the client ports in
  `Connection from 127.0.0.1 port P on 127.0.0.1 port S`.
- {len(capture.plan)} connections in {capture.seconds:.1f} s: sshpass + ssh password attempts with the names
  below, wrong passwords for the real user, `root` and `nosuchuser` (not in AllowUsers / no such user),
  two publickey logins of `{USER}` (UsePAM no and yes), an ssh offering only diffie-hellman-group1-sha1,
  and raw TCP clients (silent close, HTTP, decoy identification string, SSH-1.5, banner then EOF, a KEXINIT
  whose kex list is attacker text, SSH_MSG_DISCONNECT with attacker text, one cut at 500 characters).

{listing}

What sshd 9.2p1 does with hostile names (measured; see `tests/integration/realparts.py`):

- every syslog message is cut at exactly **{rp.SYSLOG_MSG_LIMIT} characters** (`syslog("%.500s")`) after
  escaping, so a line is at most its header plus 500 characters (longest lines above); lines that reach
  the limit lose their real `127.0.0.1 port N [preauth]` suffix;
- `Invalid user %.100s from ...`, `Failed password for [invalid user ]%.100s from ...` keep at most 100 bytes
  of the name and never reach the limit;
- preauth lines naming the user (`Connection closed by invalid user NAME ADDR port N [preauth]`,
  `Disconnecting invalid user NAME ADDR port N: Too many authentication failures [preauth]`) keep at most
  187 bytes of the name and are escaped twice (`\\` -> 4 characters, a control or non-ASCII byte -> 5), so the
  `cut-*` names below end those lines with a decoy such as ` 6.6.6.6 port 22 [preauth]`;
- a name loses everything from its first `:`, so IPv6 decoys only survive in other fields (kex offer,
  disconnect reason); control bytes appear as `\\ooo`, tabs as `\\t`.

| label | user name sent (Python repr) |
|---|---|
{names}
{END}
"""


def main() -> int:
    """Capture, anonymise, write the corpus and the README section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CORPUS_DIR, help=f"output directory (default {CORPUS_DIR})")
    args = parser.parse_args()
    reason = rp.missing_requirements()
    if reason is not None:
        print(f"cannot capture: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    files = {
        "rfc3339": args.out / "real_sshd_rfc3339.log",
        "traditional": args.out / "real_sshd_traditional.log",
    }
    with (
        tempfile.TemporaryDirectory(prefix="bg-it-keep-") as keep,
        rp.captured_session(Path(keep)) as capture,
    ):
        for label, source in (("rfc3339", capture.rfc3339_log), ("traditional", capture.traditional_log)):
            files[label].write_bytes(anonymise(source.read_bytes(), capture))
        section = readme_section(capture, files)
    readme = args.out / "README.md"
    text = readme.read_text() if readme.exists() else "# Test corpora\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text if text.endswith("\n") else text + "\n")
    for label, path in files.items():
        print(f"{path} ({label}): {stats(path)}")
    print(f"{readme} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
