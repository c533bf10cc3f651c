"""``bastionctl completion``: the generated scripts load in real shells and complete real commands.

bash runs the generated completion function the way readline would (``COMP_WORDS``/``COMP_CWORD``) and the
test reads ``COMPREPLY``; zsh (skipped when not installed) must at least load its script with compinit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BASH = shutil.which("bash")
ZSH = shutil.which("zsh")
BASTIONCTL = [sys.executable, "-m", "bastion_guard.cli.bastionctl"]


def _script(shell: str, tmp_path: Path) -> Path:
    result = subprocess.run([*BASTIONCTL, "completion", shell], capture_output=True, text=True, check=True, timeout=60)
    path = tmp_path / f"bastionctl.{shell}"
    path.write_text(result.stdout)
    return path


def _bash_complete(script: Path, words: list[str]) -> list[str]:
    """COMPREPLY for the command line ``words`` with the cursor at the end of the last word."""
    assert BASH is not None
    quoted = " ".join(f"'{word}'" for word in words)
    program = (
        f'source "$1" || exit 3\n'
        'function=$(complete -p bastionctl | sed -n "s/.* -F \\([^ ]*\\) .*/\\1/p")\n'
        '[ -n "$function" ] || exit 4\n'
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        '"$function" bastionctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run([BASH, "--norc", "--noprofile", "-c", program, "bash", str(script)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_accepts_the_script(tmp_path: Path) -> None:
    """bash parses the script (-n) and registers a completion function for bastionctl."""
    assert BASH is not None
    script = _script("bash", tmp_path)
    syntax = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True, check=False, timeout=60)
    assert syntax.returncode == 0, syntax.stderr
    registered = subprocess.run([BASH, "--norc", "-c", 'source "$1" && complete -p bastionctl', "bash", str(script)],
                                capture_output=True, text=True, check=False, timeout=60)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.strip().endswith(" bastionctl")


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_subcommands_and_options(tmp_path: Path) -> None:
    """Commands by prefix, nested subcommands, options of a subcommand and choices of an option."""
    script = _script("bash", tmp_path)
    assert _bash_complete(script, ["bastionctl", "ba"]) == ["bans", "ban"]
    assert _bash_complete(script, ["bastionctl", "bans", "l"]) == ["list"]
    assert set(_bash_complete(script, ["bastionctl", "ban", "--"])) >= {"--for", "--reason", "--socket", "--output"}
    assert _bash_complete(script, ["bastionctl", "audit", "-o", ""]) == ["human", "json"]
    assert _bash_complete(script, ["bastionctl", "completion", ""]) == ["bash", "zsh"]


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_loads_the_script(tmp_path: Path) -> None:
    """zsh loads the script as an autoloaded completion function after compinit, without errors."""
    assert ZSH is not None
    script = _script("zsh", tmp_path)
    functions = tmp_path / "functions"
    functions.mkdir()
    shutil.copy(script, functions / "_bastionctl")
    program = (
        'fpath=("$1" $fpath); autoload -Uz compinit && compinit -u -d "$2/zcompdump" || exit 3\n'
        '[[ ${_comps[bastionctl]} == _bastionctl ]] || exit 4\n'
        'autoload +X _bastionctl || exit 5\n'
    )
    result = subprocess.run([ZSH, "-f", "-c", program, "zsh", str(functions), str(tmp_path)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
