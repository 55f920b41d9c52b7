"""Every ```python block of README.md runs, as written, against the embedded receiver.

Each block runs alone, in a fresh namespace, as a reader who pastes that one
block would run it; the only change is that every http(s) URL in a string
literal becomes the receiver's. A block that sends something must have been
received. A block the suite cannot run is marked just before its fence with
``<!-- readme-test: skip: why -->``; SKIPPED pins that list.
"""

from __future__ import annotations

import pathlib
import re
from typing import Dict, List, NamedTuple

import pytest

from promwrite.receiver import Receiver

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
SKIP_MARK = re.compile(r"<!-- readme-test: skip: (.+?) -->\s*\Z")
URL_LITERAL = re.compile(r"""(["'])https?://[^"'\s]*\1""")
SENDS = re.compile(r"\.write\(|\bWriter\(|\bpush_registry\(")

#: Blocks the README marks as not runnable here (first line of each); keep it tiny.
SKIPPED: List[str] = []


class Block(NamedTuple):
    line: int  # line of the block's first code line in README.md
    code: str
    skip: str  # the marker's reason, "" when the block runs


def readme_blocks(text: str) -> List[Block]:
    """The ```python blocks of `text`, with their line and skip marker."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        mark = SKIP_MARK.search(before)
        blocks.append(Block(before.count("\n") + 2, match.group(1), mark.group(1) if mark else ""))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def with_url(code: str, url: str) -> str:
    """`code` with every http(s) URL string literal replaced by `url`."""
    return URL_LITERAL.sub(lambda m: m.group(1) + url + m.group(1), code)


def test_readme_has_python_blocks_and_few_skips() -> None:
    assert len(BLOCKS) >= 10
    assert [b.code.splitlines()[0] for b in BLOCKS if b.skip] == SKIPPED


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.skip], ids=lambda b: f"README.md:{b.line}")
def test_readme_block_runs(block: Block) -> None:
    with Receiver() as receiver:
        code = "\n" * (block.line - 1) + with_url(block.code, receiver.url)  # tracebacks name README lines
        namespace: Dict[str, object] = {"__name__": "__readme__"}
        exec(compile(code, str(README), "exec"), namespace)
        if SENDS.search(block.code):
            assert receiver.received, "the block sends, but nothing arrived"
