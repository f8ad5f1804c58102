"""The ``beatx`` entry point: :func:`main` runs the command line and maps errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from beatx.cli.exit_codes import _EXIT_BY_ERROR, EXIT_BAD_INPUT, EXIT_OK, CommandError
from beatx.cli.group import cli
from beatx.errors import BeatxError, ConflictingIdError


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line; exits with the documented exit code."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="beatx", standalone_mode=False
        )
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `beatx` or `beatx jobs` alone: the help, as click shows it, on stderr.
            click.echo(exc.format_message(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(f"{exc.format_message()}{hint}", EXIT_BAD_INPUT)
    except CommandError as exc:
        _fail(str(exc), exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except BeatxError as exc:
        code = next(code for kind, code in _EXIT_BY_ERROR if isinstance(exc, kind))
        hint = " (add --replace to replace it)" if isinstance(exc, ConflictingIdError) else ""
        _fail(f"{exc}{hint}", code)
    sys.exit(result if isinstance(result, int) else EXIT_OK)
