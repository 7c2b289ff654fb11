"""One error contract for every command line of the project (featurestore, seqtrain, jobs).

A failing command prints exactly one line ``error: <what and where>`` to stderr and exits 1
(2 for a usage error: unknown option, bad value, missing argument), with no traceback unless
``-v``/``--verbose`` is on the command line or ``AFFSTORE_TRACEBACK=1`` is set. Use it as
``@click.group(cls=ErrorGroup)`` or ``@click.command(cls=ErrorCommand)``.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

__all__ = ["ErrorCommand", "ErrorGroup", "describe"]

_MAX = 400  # characters of one error line
_OURS = {"featurestore", "trainkit", "encoders", "seqtrain", "jobs"}


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX else text[:_MAX - 3] + "..."


def describe(err: BaseException) -> str:
    """A one-line description of ``err`` that names the file where the exception knows it."""
    from featurestore.errors import FeatureStoreError

    if isinstance(err, OSError) and err.filename is not None:
        where = os.fspath(err.filename)
        if err.filename2 is not None:
            where += f" -> {os.fspath(err.filename2)}"
        return _short(f"{where}: {err.strerror or type(err).__name__}")
    if isinstance(err, FeatureStoreError | click.ClickException):
        return _short(err.format_message() if isinstance(err, click.ClickException) else str(err))
    if isinstance(err, MemoryError):
        return "out of memory"
    if isinstance(err, RecursionError):
        return "recursion too deep (a looping structure in the input?)"
    text = str(err)
    ours = type(err).__module__.split(".")[0] in _OURS  # our messages already say what and where
    if text and (ours or isinstance(err, OSError | ValueError | TypeError)):
        return _short(text)
    return _short(f"{type(err).__name__}: {text}" if text else type(err).__name__)


def _verbose(argv: list[str]) -> bool:
    return os.environ.get("AFFSTORE_TRACEBACK") == "1" or any(
        a in ("-v", "--verbose") for a in argv)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _ErrorContract:
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.ctx.get_help() if err.ctx else str(err), err=True)
            sys.exit(2)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
            _fail(_short(err.format_message()) + hint, 2)
        except click.ClickException as err:
            _fail(describe(err), err.exit_code if err.exit_code else 1)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except Exception as err:  # the contract: any failure is one line, never a traceback
            if _verbose(argv):
                traceback.print_exc()
            _fail(describe(err), 1)
        sys.exit(rv if isinstance(rv, int) else 0)


class ErrorGroup(_ErrorContract, click.Group):
    """A click group whose failures follow the project's error contract."""


class ErrorCommand(_ErrorContract, click.Command):
    """A click command whose failures follow the project's error contract."""
