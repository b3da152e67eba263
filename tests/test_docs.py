"""The documentation's anchors hold: every ``docs/<page>.md#<anchor>`` cited anywhere in the project,
and every link between the docs pages, names a heading that exists."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".tsv", ".txt"}
SKIP_DIRS = {"runs", "__pycache__", "node_modules"}
CITATION = re.compile(r"docs/(\w+)\.md#([\w-]+)")
LINK = re.compile(r"\]\((\w+\.md)?#([\w-]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Anchors of a markdown page's headings (those inside fenced code excluded)."""
    found, fenced = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.add(slug(line.lstrip("#")))
    return found


def project_texts() -> Iterator[tuple[Path, str]]:
    """(path, text) of every text file of the project, hidden folders and run outputs skipped."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        for name in files:
            path = Path(folder) / name
            if path.suffix in TEXT_SUFFIXES:
                yield path, path.read_text(encoding="utf-8", errors="replace")


def test_slug_follows_github():
    assert slug(" Top-k intersection") == "top-k-intersection"
    assert slug("Add an attack") == "add-an-attack"
    assert slug("Min-eps") == "min-eps"


def test_every_cited_docs_anchor_exists():
    pages = {p.stem: anchors(p) for p in DOCS.glob("*.md")}
    missing = []
    for path, text in project_texts():
        for page, anchor in CITATION.findall(text):
            if anchor not in pages.get(page, set()):
                missing.append(f"{path.relative_to(ROOT)}: docs/{page}.md#{anchor}")
    assert not missing, "citations of missing doc anchors:\n" + "\n".join(missing)


def test_links_between_docs_pages_resolve():
    missing = []
    for page in DOCS.glob("*.md"):
        for other, anchor in LINK.findall(page.read_text(encoding="utf-8")):
            target = DOCS / other if other else page
            if not target.is_file() or anchor not in anchors(target):
                missing.append(f"{page.name}: {other}#{anchor}")
    assert not missing, "broken links in docs/:\n" + "\n".join(missing)
