"""Generated files committed for packaging are what their generators print (regenerate, never hand-edit)."""

from __future__ import annotations

from pathlib import Path

from bastion_guard.runtime.config_reference import render_commented_config

REPO = Path(__file__).resolve().parents[2]


def test_installed_default_config_is_the_generated_one() -> None:
    """packaging/bastiond.yaml (what make install places) equals ``bastionctl config-reference --format yaml``."""
    expected = render_commented_config() + "\n"
    assert (REPO / "packaging" / "bastiond.yaml").read_text() == expected, (
        "regenerate: bastionctl config-reference --format yaml > packaging/bastiond.yaml"
    )
