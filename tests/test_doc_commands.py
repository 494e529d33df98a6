"""Every ``mrideblur ...`` command line in the README and docs/ parses as written: the options it
uses exist, take the values shown, and the required ones are there.  (The README's Python blocks
run in tests/test_doc_snippets.py; these commands need the user's files, so they are parsed.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mrideblur.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():  # continued lines joined
                line = line.strip().removeprefix("$ ")
                if line.startswith("mrideblur "):
                    found.append((f"{page.name}: {line[:60]}", line))
    return found


COMMANDS = _commands()


def test_the_pages_hold_commands():
    assert len(COMMANDS) >= 10 and any(c.startswith("mrideblur correct") for _, c in COMMANDS)


@pytest.mark.parametrize("line", [c for _, c in COMMANDS], ids=[i for i, _ in COMMANDS])
def test_command_parses_as_written(line):
    line = line.split("  #")[0].split(" # ")[0]              # a trailing comment
    line = re.sub(r"\[[^\]]*\]", " ", line)                  # [--optional parts] shown in brackets
    argv = shlex.split(line)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage error (or --help, which exits 0)
        assert exc.code == 0, f"does not parse: {line}"
