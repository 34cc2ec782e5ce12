"""docs/: the generated command-line reference is current, every page is reachable from the
README, relative links resolve, and the README's command lines parse."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from lagllama.cli import build_parser
from lagllama.cli.reference import COMMAND, DOCS, render

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()  # imports torch: once per module


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(page.read_text())
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_cli_reference_is_generated_from_the_parsers(parser: argparse.ArgumentParser) -> None:
    assert DOCS.read_text() == render(parser), f"docs/cli.md is stale: run `{COMMAND}`"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t.split("#")[0]).resolve() for t in relative_links(README)}
    assert PAGES and [p for p in PAGES if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert broken == [], f"{page.relative_to(ROOT)}: links to missing files {broken}"


def readme_command_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # backslash continuations become one line
        lines += [line.strip() for line in joined.splitlines() if line.startswith("lagllama ")]
    return lines


def test_readme_has_command_lines() -> None:
    assert len(readme_command_lines()) >= 5


@pytest.mark.parametrize("line", readme_command_lines())
def test_readme_command_line_parses(line: str, parser: argparse.ArgumentParser) -> None:
    args = parser.parse_args(shlex.split(line, comments=True)[1:])
    assert args.command == shlex.split(line)[1]
