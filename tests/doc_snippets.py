"""Extract and run the ```python blocks of the README and docs/*.md (used by test_doc_snippets.py).

A block is run unless the line just before its opening fence is the HTML comment
``<!-- not-run -->`` (for pseudo-code a reader is not meant to paste).  The blocks of one file run
in order in one namespace: a block may use the names an earlier block of the same page defined.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = "<!-- not-run -->"
_OPEN = re.compile(r"^```\s*python\s*$")
_FENCE = re.compile(r"^```")


@dataclass(frozen=True)
class Block:
    path: Path        # the Markdown file
    index: int        # 1-based among the file's ```python blocks
    line: int         # 1-based line of the opening fence
    code: str
    run: bool         # False when marked <!-- not-run -->

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}#{self.index}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if _OPEN.match(lines[i]):
            start = i
            j = i + 1
            while j < len(lines) and not _FENCE.match(lines[j]):
                j += 1
            if j == len(lines):
                raise ValueError(f"{path}:{start + 1}: unclosed ```python block")
            prev = lines[start - 1].strip() if start > 0 else ""
            blocks.append(Block(path, len(blocks) + 1, start + 1, "\n".join(lines[start + 1:j]) + "\n",
                                prev != NOT_RUN))
            i = j + 1
        elif _FENCE.match(lines[i]):          # skip any other fenced block whole
            j = i + 1
            while j < len(lines) and not _FENCE.match(lines[j]):
                j += 1
            i = j + 1
        else:
            i += 1
    return blocks


def run_block(block: Block, namespace: dict) -> None:
    """Execute one block in ``namespace``; tracebacks point at the Markdown file and line."""
    # pad with blank lines so that a traceback's line number is the Markdown file's own
    source = "\n" * block.line + block.code
    exec(compile(source, str(block.path), "exec"), namespace)
