"""The ``xpnn`` command line (also ``python -m xpnn``; ``scripts/`` call :func:`run_script`).

Exit statuses: :data:`EXIT_STATUSES`; a reader closing standard output early ends it quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import inspect
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple, NoReturn

from .. import __version__
from .._files import sigterm_raises
from ..errors import XpnnError
from . import evaluate
from .commands import ExportOnnx, PlotActivations, ShowMnist

__all__ = ["COMMANDS", "main", "run_script"]


class Command(NamedTuple):
    name: str
    target: Any  # a module or class with configure(parser) and run(args) -> str
    summary: str


EXIT_STATUSES = "Errors are one line on stderr and status 2; Ctrl-C gives 130, SIGTERM 143."

#: The subcommands, in the order ``xpnn --help`` lists them.
COMMANDS = (
    Command("eval", evaluate, "classify the MNIST test set and report the accuracy"),
    Command("plot-activations", PlotActivations, "draw sigmoid, step, ReLU"),
    Command("show-mnist", ShowMnist, "draw test digits and the predictions"),
    Command("export-onnx", ExportOnnx, "export the network to an ONNX model"),
)


class ArgumentParser(argparse.ArgumentParser):
    """A parser whose usage errors are one line: ``prog: error: message (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _configured(command: Command, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` with the command's options; the command's docstring is its help text."""
    first, _, rest = (inspect.getdoc(command.target) or "").partition("\n\n")
    parser.description, parser.epilog = first, f"{rest}\n\n{EXIT_STATUSES}".lstrip()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    command.target.configure(parser)
    parser.set_defaults(run=command.target.run, prog=parser.prog)  # 'xpnn eval', 'eval.py'
    return parser


def _build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(  # no command: the usage and status 2, as argparse does
        prog=prog, epilog="Run 'xpnn COMMAND --help' for a command's options.",
        description="The forward pass of Deep Learning from Scratch, chapter 3, on any backend.",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"xpnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                     parser_class=ArgumentParser, required=True)  # fmt: skip
    for command in COMMANDS:
        _configured(command, commands.add_parser(command.name, help=command.summary))
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "xpnn") -> int:
    """Run the ``xpnn`` command line; return the exit status (0, 2, 130 or 143).

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    xpnn ...
    0
    >>> main(["eval", "--batch-size", "0"])
    2
    """
    return _run(_build_parser(prog), argv)


def run_script(name: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run one command as a script of its own (``scripts/eval.py``) and exit.

    Examples
    --------
    >>> run_script("eval", ["--batch-size", "0"])
    Traceback (most recent call last):
    SystemExit: 2
    """
    (command,) = (c for c in COMMANDS if c.name == name)
    parser = _configured(command, ArgumentParser(prog=os.path.basename(sys.argv[0]) or name))
    sys.exit(_run(parser, sys.argv[1:] if argv is None else argv))


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, run the command under the error rule, print its output; return the status."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, a usage error (argparse ignores EPIPE)
        return _written(stop.code if isinstance(stop.code, int) else 0, None, "")
    prog, hook, sys.unraisablehook = args.prog, sys.unraisablehook, _unraisable
    try:
        with sigterm_raises():  # SIGTERM (kill, timeout, a container stop)
            text = args.run(args)
    except (XpnnError, ValueError, TypeError, OSError) as err:
        _say(f"{prog}: error: {' '.join(str(err).split()) or type(err).__name__}")
        return 2
    except (KeyboardInterrupt, SystemExit) as stop:  # Ctrl-C, or SIGTERM's SystemExit(143)
        if (status := getattr(stop, "code", 130)) not in (130, 143):
            raise
        if threading.current_thread() is threading.main_thread():  # a second signal must
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # not cut the exit's cleanup short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _say(f"{prog}: {'terminated' if status == 143 else 'interrupted'}")
        return int(status)
    finally:
        sys.unraisablehook = hook
    return _written(0, prog, text)


def _unraisable(info: Any) -> None:  # a Ctrl-C in a finaliser is no traceback to show
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)


def _written(code: int, prog: str | None, text: str) -> int:
    """Print ``text`` and flush; a closed pipe is a quiet 2, another failure one line and 2."""
    try:
        if text:
            print(text)
        sys.stdout.flush()
    except OSError as err:
        with contextlib.suppress(OSError, ValueError):  # so that the exit flush cannot fail again
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.__stdout__.fileno() if sys.__stdout__ else 1)
            os.close(null)
        if err.errno != errno.EPIPE and prog is not None:
            _say(f"{prog}: error: cannot write to standard output: {err.strerror or err}")
        return 2
    return code


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)
