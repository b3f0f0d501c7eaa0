"""The parser classes every command shares, and how errors become one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys

EXIT_IO = 74  # sysexits.h EX_IOERR: a file could not be written (disk full, too large, no access)


class Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or any(default is v for v in (None, False, argparse.SUPPRESS))
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parent() -> Parser:
    """An empty parser for ``parents=[...]``: options only, no ``--help`` of its own."""
    return Parser(add_help=False)


def error(message: str):
    """The one exception type of bad input (``TorchgdError``): one line on stderr, exit 2."""
    from ..errors import TorchgdError

    return TorchgdError(message)


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def dispatch(args) -> int:
    """Run the command; turn Ctrl-C, a closed stdout, a failed write and bad input into their
    exit codes (130, 141, 74, 2), each with at most one line on stderr."""
    try:
        return args.func(args)
    except KeyboardInterrupt:
        stderr("torchgd: interrupted")
        return 130
    except BrokenPipeError:  # `torchgd ... | head`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for Python's last flush
        return 141  # 128 + SIGPIPE, what a shell reports for a tool that SIGPIPE ended
    except OSError as exc:  # disk full, a file too large, no permission: the run's files stay
        where = f"'{exc.filename}': " if exc.filename else ""
        stderr(
            f"torchgd {args.command}: error: {where}{exc.strerror or exc} "
            "(everything written before it is kept)"
        )
        return EXIT_IO
    except Exception as exc:
        from ..errors import TorchgdError

        if isinstance(exc, TorchgdError):
            stderr(f"torchgd {args.command}: error: {exc}")
            return 2
        raise


def negatives_glued(argv: list) -> list:
    """``--eps -1,1e-3`` as ``--eps=-1,1e-3``: argparse takes a value that starts with a minus
    for an option unless it is a plain negative number (so a pair, ``-1,1e-3``, or ``-1e-3``
    was "expected one argument"); a torch check then says what is wrong with it."""
    import re

    out = []
    for a in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"-[\d.]", a):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out
