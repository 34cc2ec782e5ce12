"""The command-line reference, docs/cli.md, generated from the argparse parsers.

``python -m lagllama.cli.reference`` rewrites docs/cli.md; tests/test_docs.py checks that the
file equals :func:`render`, so a new flag fails the tests until the reference is regenerated.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lagllama.cli import build_parser

WIDTH = 100
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
COMMAND = "python -m lagllama.cli.reference"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _help(parser: argparse.ArgumentParser) -> str:
    """The parser's help at a fixed width (argparse reads the width from $COLUMNS)."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        return parser.format_help().rstrip() + "\n"
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown reference: the top-level help, then every subcommand's help in order."""
    parser = parser or build_parser()
    parts = [
        "# Command-line reference\n",
        f"Generated from the argparse parsers by `{COMMAND}`; do not edit by hand.\n",
        "## lagllama\n",
        f"```text\n{_help(parser)}```\n",
    ]
    for name, sub in _subcommands(parser).items():
        parts.append(f"## lagllama {name}\n")
        parts.append(f"```text\n{_help(sub)}```\n")
    return "\n".join(parts)


def main() -> None:
    """Write docs/cli.md."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(render())
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
