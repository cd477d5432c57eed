"""Entry point: ``fieldvision [--debug] [--version] COMMAND ...``.

User-facing errors (`FieldVisionError`) become a one-line message on stderr and exit code
2; the traceback is shown only with ``--debug`` (or ``FIELDVISION_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys

import typer

from fieldvision import __version__
from fieldvision.cli.biomass import app as biomass_app
from fieldvision.cli.demo import demo
from fieldvision.cli.export import export
from fieldvision.cli.flow import app as flow_app
from fieldvision.cli.mil import app as mil_app
from fieldvision.cli.reid import app as reid_app
from fieldvision.errors import FieldVisionError

app = typer.Typer(
    name="fieldvision",
    help="Competition-grade CV pipelines for small, noisy image datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(biomass_app, name="biomass")
app.add_typer(reid_app, name="reid")
app.add_typer(mil_app, name="mil")
app.add_typer(flow_app, name="flow")
app.command("demo")(demo)
app.command("export")(export)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fieldvision {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """fieldvision: biomass regression, re-identification, MIL and people flow."""
    # `--debug` is read by `main` from the arguments; nothing global is set here, so one
    # in-process call never changes how the next one reports errors.


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (errors → message + exit code 2)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("FIELDVISION_DEBUG") == "1"
    try:
        app(args=args, prog_name="fieldvision", standalone_mode=False)
    except FieldVisionError as exc:
        if debug:
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("aborted", err=True)
        return 130
    except Exception as exc:
        # Usage errors (bad option, unknown command) arrive here in non-standalone mode; typer
        # may vendor click, so recognise them by interface rather than by class.
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()
            return int(exc.exit_code)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
