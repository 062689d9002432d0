"""The ``xpnn`` command line: ``eval``, ``plot-activations``, ``show-mnist``, ``export-onnx``.

Installed as the ``xpnn`` console script and runnable as ``python -m xpnn``;
the files in a clone's ``scripts/`` directory call :func:`run_script` with
one command's name.

Every command follows one rule for errors: a single line on stderr and exit
status 2, never a traceback (``main`` catches xpnn's errors, a closed or full
standard output and Ctrl-C; Ctrl-C exits with 130).

Adding a command takes a module in this package with two functions,
``configure(parser)`` (add the arguments) and ``run(args) -> int``, and one
:class:`Command` line in :data:`COMMANDS`.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
xpnn ...
0
>>> [command.name for command in COMMANDS]
['eval', 'plot-activations', 'show-mnist', 'export-onnx']
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

from ._common import ArgumentParser, quiet_stdout, run_guarded

__all__ = ["COMMANDS", "Command", "main", "run_script"]


@dataclass(frozen=True)
class Command:
    """One subcommand of ``xpnn``.

    Parameters
    ----------
    name : str
        What the user types: ``xpnn <name>``.
    module : str
        The module that implements it, with ``configure(parser)`` and
        ``run(args) -> int``; imported only when the command line is parsed.
    summary : str
        One line for ``xpnn --help``.

    Examples
    --------
    >>> command = Command("eval", "xpnn.cli.evaluate", "classify the MNIST test set")
    >>> command.load().__name__
    'xpnn.cli.evaluate'
    """

    name: str
    module: str
    summary: str

    def load(self) -> ModuleType:
        """Import and return the implementing module."""
        return importlib.import_module(self.module)

    def parser_texts(self) -> dict[str, Any]:
        """Description and epilog from the module's docstring, for the command's parser.

        The first paragraph describes the command; the rest (examples,
        environment) follows the options in ``--help``.
        """
        first, _, rest = (self.load().__doc__ or self.summary).strip().partition("\n\n")
        return {
            "description": first,
            "epilog": rest or None,
            "formatter_class": argparse.RawDescriptionHelpFormatter,
        }


#: The subcommands, in the order ``xpnn --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(
        "eval",
        "xpnn.cli.evaluate",
        "classify the MNIST test set with the book's pretrained network and report",
    ),
    Command(
        "plot-activations",
        "xpnn.cli.plot_activations",
        "draw the chapter's activation functions (sigmoid, step, ReLU) to an image file",
    ),
    Command(
        "show-mnist",
        "xpnn.cli.show_mnist",
        "draw MNIST test digits with their labels and the network's predictions",
    ),
    Command(
        "export-onnx",
        "xpnn.cli.export_onnx",
        "export the network to an ONNX model traced through xpnn's own forward pass",
    ),
)


def _command(name: str) -> Command:
    for command in COMMANDS:
        if command.name == name:
            return command
    raise KeyError(name)


class _TopParser(argparse.ArgumentParser):
    """``xpnn`` itself: a missing or unknown command prints the usage and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser(prog: str) -> argparse.ArgumentParser:
    from .. import __version__

    parser = _TopParser(
        prog=prog,
        description="The forward pass of Deep Learning from Scratch, chapter 3, "
        "on any array backend.",
        epilog="Run 'xpnn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"xpnn {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=ArgumentParser
    )
    commands.required = True
    for command in COMMANDS:
        module = command.load()
        sub = commands.add_parser(command.name, help=command.summary, **command.parser_texts())
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "xpnn") -> int:
    """Run the ``xpnn`` command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str or None
        The arguments after the program name; ``None`` reads ``sys.argv``.
    prog : str
        The program name shown in usage and error messages.

    Returns
    -------
    int
        0 on success, 2 on any error (one line on stderr), 130 on Ctrl-C.

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    xpnn ...
    0
    """
    parser = _build_parser(prog)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    return _finish(run_guarded(args.run, args, f"{prog} {args.command}"))


def run_script(name: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run one command as a script of its own (``scripts/eval.py``) and exit.

    Parameters
    ----------
    name : str
        A command of :data:`COMMANDS`, e.g. ``"eval"``.
    argv : sequence of str or None
        The script's arguments; ``None`` reads ``sys.argv[1:]``.

    Examples
    --------
    A usage error ends the script with status 2 (its one line goes to stderr):

    >>> try:
    ...     run_script("eval", ["--batch-size", "0"])
    ... except SystemExit as stop:
    ...     print(stop.code)
    2
    """
    import os

    command = _command(name)
    module = command.load()
    prog = os.path.basename(sys.argv[0]) or name
    parser = ArgumentParser(prog=prog, **command.parser_texts())
    module.configure(parser)
    args = _parse(parser, sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        sys.exit(args)
    sys.exit(_finish(run_guarded(module.run, args, prog)))


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status after ``--help``, ``--version`` or a usage error."""
    try:
        return parser.parse_args(argv)
    except SystemExit as stop:
        return _finish(stop.code if isinstance(stop.code, int) else 0)
    except OSError:  # --help into a closed pipe
        quiet_stdout()
        return 2


def _finish(code: int) -> int:
    """Flush standard output; a reader that went away is not an error worth a traceback."""
    try:
        sys.stdout.flush()
    except OSError:
        quiet_stdout()
        return 2
    return code
