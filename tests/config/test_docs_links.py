"""Relative links in the README and docs/ point at files that exist (a renamed doc cannot leave a dead link)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(path.relative_to(REPO)) for path in DOCUMENTS])
def test_relative_links_resolve(document: Path) -> None:
    """Every ``[text](relative/path)`` in the document names an existing file."""
    targets = [target for target in LINK.findall(document.read_text()) if "://" not in target]
    missing = [target for target in targets if not (document.parent / target).exists()]
    assert not missing, missing


def test_readme_links_every_doc() -> None:
    """Each page in docs/ is reachable from the README."""
    readme = (REPO / "README.md").read_text()
    unlinked = [path.name for path in (REPO / "docs").glob("*.md") if f"](docs/{path.name})" not in readme]
    assert not unlinked, unlinked
