"""The documentation cannot go stale: every ``$ command`` quoted in README.md and docs/*.md is
run, from a directory outside the checkout, and its quoted output is compared with what it
prints now.

A quoted block is a fenced block whose first line starts with ``$ ``; each ``$ `` line is a
command and the lines below it, up to the next one, are what it printed. The comparison is of
the text with every run of whitespace made one space (so a long line may be wrapped in the
docs), in order, where ``...`` stands for anything the quote leaves out. Every number quoted
must be printed as quoted: nothing is rounded to make a quote pass.
"""

import os
import re
import shlex
import subprocess
from pathlib import Path

import processes
import pytest

from conftest import ROOT, draw_here

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("tests", "scripts", "examples")  # what quoted commands may name by a relative path


def fenced_blocks(path: Path) -> list[tuple[str, list[str]]]:
    """``(where, lines)`` of every fenced block of a Markdown file."""
    out, block, start = [], None, 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            if block is None:
                block, start = [], number
                continue
            out.append((f"{path.name}:{start}", block))
            block = None
        elif block is not None:
            block.append(line)
    return out


def quoted_commands(path: Path) -> list[tuple[str, str, str]]:
    """``(where, command, expected output)`` for every ``$ `` line of the file's blocks."""
    out = []
    for where, lines in fenced_blocks(path):
        if lines and lines[0].startswith("$ "):
            out += _commands(where, lines)
    return out


def _commands(where: str, lines: list[str]) -> list[tuple[str, str, str]]:
    found = []
    for line in lines:
        if line.startswith("$ "):
            found.append([line[2:], []])
        else:
            found[-1][1].append(line)
    return [(where, command, "\n".join(expected)) for command, expected in found]


def matches(expected: str, actual: str) -> bool:
    """Whether ``expected`` (``...`` for anything) appears in ``actual``, whitespace aside."""
    words = " ".join(expected.split())
    parts = [re.escape(p.strip()) for p in words.split("...")]
    pattern = r"\s*.*?\s*".join(parts)
    return re.search(pattern, " ".join(actual.split()), flags=re.DOTALL) is not None


def run_quoted(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A ``python`` command as a user types it, in a process of its own."""
    argv = shlex.split(command)
    assert argv[0] == "python", f"only python commands run outside this process: {command}"
    return processes.run_python(
        argv[1:], cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    )


CASES = [case for doc in DOCS for case in quoted_commands(doc)]


def python_sessions(path: Path) -> list[tuple[str, str]]:
    """``(where, text)`` of every fenced block that is a Python session (``>>> `` first)."""
    return [
        (where, "\n".join(lines) + "\n")
        for where, lines in fenced_blocks(path)
        if lines and lines[0].startswith(">>> ")
    ]


SESSIONS = [case for doc in DOCS for case in python_sessions(doc)]


def test_the_docs_quote_commands_and_every_file_is_found():
    assert len(CASES) >= 5
    assert any(where.startswith("README.md") for where, _, _ in CASES)


def test_the_matcher_is_exact_about_numbers_and_loose_about_wrapping():
    printed = "w = 1.9999999999999998, loss=7.888609052210118e-31\nrun in runs/x-1"
    assert matches("w = 1.9999999999999998,\n   loss=7.888609052210118e-31", printed)
    assert matches("loss=7.888609052210118e-31 ... runs/...", printed)
    assert not matches("w = 1.9999999999999997", printed)  # one digit off is off
    assert not matches("loss=7.888609052210118e-31 w = 1.9999999999999998", printed)  # order


def run_here(command: str, cwd: Path, capsys, monkeypatch) -> subprocess.CompletedProcess:
    """A ``torchgd`` command through the same ``main()`` in this process, from ``cwd`` (torch
    is already imported here: seconds saved per command; the console script itself is tested
    in test_cli)."""
    from torchgd.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "100")
    draw_here(monkeypatch)  # as main_cli: no second interpreter per command
    capsys.readouterr()
    try:
        code = main(shlex.split(command)[1:])
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(command, code, out, err)


@pytest.mark.parametrize("where,command,expected", CASES, ids=[c[0] for c in CASES])
def test_a_quoted_command_prints_what_the_docs_say(
    where, command, expected, tmp_path, capsys, monkeypatch
):
    for name in LINKED:  # relative paths as in the checkout, from a directory outside it
        if (ROOT / name).exists():
            (tmp_path / name).symlink_to(ROOT / name)
    if command.startswith("torchgd "):
        proc = run_here(command, tmp_path, capsys, monkeypatch)
    else:  # python scripts/...: a process of its own, as a user starts it
        proc = run_quoted(command, tmp_path)
    printed = proc.stdout + proc.stderr
    assert matches(expected, printed), (
        f"{where}: `{command}` no longer prints what the docs quote.\n--- quoted:\n{expected}\n"
        f"--- printed (exit {proc.returncode}):\n{printed[-6000:]}"
    )


def test_the_docs_have_python_sessions():
    assert any(where.startswith("python.md") for where, _ in SESSIONS)


PAGES = sorted({where.split(":")[0] for where, _ in SESSIONS})


@pytest.mark.parametrize("page", PAGES)
def test_a_pages_python_sessions_print_what_the_docs_say(page, tmp_path, monkeypatch):
    """A page's sessions run top to bottom in one namespace, as doctest runs them, from a
    directory outside the checkout; ``...`` stands for what the docs leave out."""
    import doctest

    monkeypatch.chdir(tmp_path)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    namespace: dict = {}
    out = []
    for where, text in SESSIONS:
        if where.split(":")[0] == page:
            test = doctest.DocTestParser().get_doctest(text, namespace, where, where, 0)
            runner.run(test, out=out.append, clear_globs=False)
            namespace = test.globs
    assert runner.tries > 0 and runner.failures == 0, "".join(out)


def test_every_test_the_docs_name_exists():
    """A recipe in docs/layout.md names the test that does it: renaming or deleting that test
    must fail here, not leave the page pointing at nothing."""
    named = set()
    for page in DOCS:
        text = re.sub(r"\s+", "", page.read_text())  # names are wrapped across lines
        for file, tests in re.findall(r"tests/(test_\w+\.py)((?:::test_\w+)+)", text):
            named |= {(file, t) for t in tests.split("::") if t}
    assert len(named) >= 5
    for file, test in sorted(named):
        assert f"def {test}(" in (ROOT / "tests" / file).read_text(), f"{file}::{test}"
