"""The ``torchgd`` command line. Heavy modules (torch, matplotlib, tensorboard) load lazily,
inside the command that needs them, so ``torchgd --help`` answers at once.

One module per command (``add_parser(subparsers)`` and ``run(args) -> int``); the option groups
they share are in ``common.py``, the parser classes and error handling in ``app.py``, the
execution of a plan into a run directory in ``running.py``.

Exit codes: 0 done, 1 a check failed, 2 bad input (one line on stderr), 3 a run diverged,
74 a file could not be written (disk full, too large, no permission), 130 interrupted (Ctrl-C),
141 the reader of stdout went away (``| head``).
"""

from __future__ import annotations

import argparse
import re
import sys

from .. import rules, runconfig
from ..control import quick_exit
from . import bench, check, lecture, plot, sweep, tb, train
from .app import EXIT_IO, Formatter, Parser, dispatch, negatives_glued
from .common import PATHS

__all__ = ["EXIT_IO", "PATHS", "Formatter", "Parser", "build_parser", "entry", "main"]
__all__ += ["quick_exit"]

COMMANDS = (lecture, train, sweep, plot, tb, check, bench)  # in the order --help lists them


def build_parser() -> Parser:
    parser = Parser(
        prog="torchgd",
        description="Gradient descent made exact, visible and verifiable: the lecture's "
        "model trained by three paths in lockstep (manual formula, autograd, "
        f"torch.optim: {', '.join(m.TORCH_CLASS for m in rules.ALL.values())}), every step "
        "compared.",
        epilog="exit codes: 0 ok, 1 check failed, 2 bad input, 3 diverged, 74 cannot write a "
        "file (disk full, no permission), 130 interrupted, 141 stdout closed",
    )
    parser.add_argument("--version", action="version", version="torchgd 0.1.0")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def entry() -> None:
    """The ``torchgd`` console script: ``main()``, then ``quick_exit``."""
    quick_exit(main())


def _unrecognized(parser, command, extra) -> None:
    """argparse's "unrecognized arguments", said by the command, with a guess."""
    import difflib

    sub = parser._subparsers._group_actions[0].choices.get(command) if command else None
    known = [o for a in (sub or parser)._actions for o in a.option_strings]
    flags = [e.split("=")[0] for e in extra if e.startswith("--")]
    near = difflib.get_close_matches(flags[0], known, n=1, cutoff=0.8) if flags else []
    hint = f"; did you mean {near[0]}?" if near else ""
    (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}{hint}")


RENAMED = {  # old flag: new, why; the keywords renamed in this version, as flags
    f"--{old}": (f"--{new}", re.sub(r"(\w+)=", r"--\1", why))
    for old, (new, _, why) in runconfig.RENAMED.items()
}


def said_renamed(argv: list) -> str | None:
    """An option renamed in this version still works; stderr says what replaced it. Both
    names given: the error (they would disagree)."""
    for old, (new, why) in RENAMED.items():
        given = lambda flag: any(a == flag or a.startswith(flag + "=") for a in argv)  # noqa: E731
        if given(old) and given(new):
            return f"give {new} only ({old} is its old name), not both"
        if given(old):
            print(f"torchgd: {old} is now {new} ({why}); {old} still works in this version",
                  file=sys.stderr)  # fmt: skip
    return None


def main(argv=None) -> int:
    from ..errors import TorchgdError
    from .common import user_rule_fields

    given = sys.argv[1:] if argv is None else list(argv)
    try:
        user_rule_fields(given)
        parser = build_parser()
    except (TorchgdError, argparse.ArgumentError) as exc:  # a user's rule: one line, exit 2
        command = next((a for a in given if not a.startswith("-")), "")
        if isinstance(exc, argparse.ArgumentError):  # its option named like a flag of ours
            exc = (f"your rule's option {exc.argument_name} is also an option of torchgd: "
                   "name it otherwise in its Hyper")  # fmt: skip
        print(f"torchgd {command}: error: {exc}".replace("  ", " "), file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(negatives_glued(given))
    if extra:  # the command's name in the error, and the option a typo may have meant
        _unrecognized(parser, args.command, extra)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.build_parser = build_parser  # --resume parses the command line again
    both = said_renamed(given)
    if both:  # as argparse says an error, by the command
        sub = parser._subparsers._group_actions[0].choices.get(args.command)
        (sub or parser).error(both)
    if args.command is None:  # plain `torchgd`: what it can do
        parser.print_help()
        return 0
    try:
        return dispatch(args)
    finally:
        drawer = getattr(args, "drawer", None)
        if drawer is not None:  # an error or Ctrl-C: stop drawing; finished figures stay
            drawer.close()
