"""Fenced code blocks of the README and of ``docs/*.md``: the one parser that tests and CI share.

``python tests/markdown_blocks.py quick-start README.md`` prints the commands of the README's
Quick start block; ``.ci/run`` runs exactly what this prints, and ``tests/test_readme.py``
checks the same function, so the README and CI cannot drift apart. Standard library only: CI
calls it before any virtual environment exists.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<body>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[^`\s]*)\s*$")
HEADING = re.compile(r"^#+\s+(?P<title>.+?)\s*$")
QUICK_START = "quick-start"
SHELL_LANGS = {"sh", "bash", "shell"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    lang: str
    source: str
    line: int  # 1-based line of the opening fence
    section: str
    marker: str | None  # the body of a readme-test comment on the line before, if any
    file: str = "README.md"  # relative to the repository root

    @property
    def id(self) -> str:
        return f"{self.file}-{self.section}-L{self.line}-{self.lang or 'none'}"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "top"


def parse_blocks(text: str, file: str = "README.md") -> list[Block]:
    """Return every fenced block of a Markdown text, in order."""
    lines = text.splitlines()
    blocks = []
    section = "top"
    i = 0
    while i < len(lines):
        heading = HEADING.match(lines[i])
        if heading:
            section = _slug(heading["title"])
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent = fence["indent"]
        body = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"{file} line {i + 1}: code block never closed")
        marker = MARKER.match(lines[i - 1].strip() if i else "")
        source = "\n".join(body) + "\n"
        lang = fence["lang"].lower()
        blocks.append(Block(lang, source, i + 1, section, marker and marker["body"], file))
        i = j + 1
    return blocks


def quick_start(text: str) -> str:
    """The shell commands of the Quick start section's first shell block."""
    for block in parse_blocks(text):
        if block.section == QUICK_START and block.lang in SHELL_LANGS:
            return block.source
    raise ValueError("README.md has no shell block under '## Quick start'")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "quick-start":
        sys.exit("usage: python tests/markdown_blocks.py quick-start README.md")
    sys.stdout.write(quick_start(Path(sys.argv[2]).read_text(encoding="utf-8")))
