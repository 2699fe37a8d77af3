"""CONTRIBUTING.md shows only real code of this plugin and real output of robench3d (style.md, practice 14).

Two conventions in CONTRIBUTING.md, both checked here:

* ``<!-- from PATH -->`` on the line right before a fenced block: the block (dedented) appears verbatim in PATH,
  a path from the repository root. Every ``python`` and ``toml`` block must carry one, so no snippet goes unchecked.
* a ``console`` block: every ``$ [VAR=value ...] robench3d ARGS`` line is run in-process (in a cache of the test
  session's own); the lines after it, up to the next ``$`` line, must each appear in what it printed (``...``
  stands for lines left out), and a trailing ``# exit N`` is the exit code it must return (default 0).
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from robench3d.cli import main

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "CONTRIBUTING.md"
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
FROM = re.compile(r"<!-- from (\S+) -->")
CHECKED_LANGS = ("python", "toml")


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    source: str | None  # the PATH of a ``<!-- from PATH -->`` marker
    line: int


def blocks(text: str) -> list[Block]:
    """Every fenced block of a markdown text, with the ``from`` marker on the line before it, if any."""
    out = []
    for m in FENCE.finditer(text):
        previous = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = FROM.fullmatch(previous.strip())
        out.append(Block(m["lang"], textwrap.dedent(m["body"]), marker.group(1) if marker else None,
                         text.count("\n", 0, m.start()) + 1))
    return out


def snippet_problems(text: str, root: Path = ROOT) -> list[str]:
    """Why the snippets of ``text`` are not the real code (empty when every one is)."""
    problems = []
    for b in blocks(text):
        if b.source is None:
            if b.lang in CHECKED_LANGS:
                problems.append(f"line {b.line}: a {b.lang} block without <!-- from PATH --> before it")
            continue
        path = root / b.source
        if not path.is_file():
            problems.append(f"line {b.line}: {b.source} does not exist")
        elif b.body.strip("\n") not in path.read_text():
            problems.append(f"line {b.line}: this {b.lang} block is not verbatim in {b.source}")
    return problems


@dataclass(frozen=True)
class Command:
    env: dict[str, str]
    argv: list[str]
    exit_code: int
    expected: list[str]
    line: int


def commands(text: str) -> list[Command]:
    """The ``$ robench3d ...`` lines of the console blocks, with what they must print."""
    out: list[Command] = []
    for b in blocks(text):
        if b.lang != "console":
            continue
        for i, raw in enumerate(b.body.splitlines()):
            if raw.startswith("$ "):
                cmd, _, comment = raw[2:].partition("  # ")
                exit_code = int(m.group(1)) if (m := re.fullmatch(r"exit (\d+)", comment.strip())) else 0
                words = shlex.split(cmd)
                env = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", w))
                argv = words[len(env):]
                assert argv[0] == "robench3d", f"CONTRIBUTING.md line {b.line + i + 1}: only robench3d commands run"
                out.append(Command(env, argv[1:], exit_code, [], b.line + i + 1))
            elif out and raw.strip() not in ("", "..."):
                out[-1].expected.append(raw.rstrip())
    return out


def test_every_snippet_is_the_real_code() -> None:
    assert snippet_problems(DOC.read_text()) == []


def test_the_snippet_check_can_fail() -> None:
    """A changed snippet, an unmarked one and a marker to a missing file are each reported."""
    text = DOC.read_text()
    marked = [b for b in blocks(text) if b.source is not None and b.lang == "python"]
    assert len(marked) >= 4, "CONTRIBUTING.md shows the example's backbone, spec, attack and defense"
    body = marked[0].body.strip("\n")
    changed = text.replace(body, body.replace("def ", "def  ", 1), 1)
    assert any("not verbatim" in p for p in snippet_problems(changed))
    assert any("without <!-- from PATH -->" in p for p in snippet_problems(text + "\n```python\nx = 1\n```\n"))
    assert any("does not exist" in p
               for p in snippet_problems(text + "\n<!-- from no/such/file.py -->\n```python\nx = 1\n```\n"))


COMMANDS = commands(DOC.read_text())


def test_console_blocks_are_found() -> None:
    assert len(COMMANDS) >= 3 and all(c.expected for c in COMMANDS)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"line{c.line}" for c in COMMANDS])
def test_console_output_is_what_robench3d_prints(cmd: Command, cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # a run's default --output folder must not land in the repository
    for key, value in cmd.env.items():
        monkeypatch.setenv(key, value)
    code = main(cmd.argv)
    captured = capsys.readouterr()
    printed = [line.rstrip() for line in (captured.out + captured.err).splitlines()]
    assert code == cmd.exit_code, captured.err
    missing = [line for line in cmd.expected if line not in printed]
    assert not missing, f"CONTRIBUTING.md line {cmd.line}: not printed: {missing}\nprinted:\n" + "\n".join(printed)
