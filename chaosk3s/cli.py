"""The chaosk3s command."""

import sys
import time

import click

try:
    from chaostoolkit.commands.run import validate_vars
except ImportError:  # chaostoolkit 1.18 has all its commands in one module
    from chaostoolkit.cli import validate_vars

from chaosk3s.cli_lab import lab
from chaosk3s.clitools import friendly
from chaosk3s.consent_cli import abort_command, consent_command
from chaosk3s.faults_cli import cleanup_command, faults_command
from chaosk3s.gameday.cli import gameday_group
from chaosk3s.matrix_cli import matrix_command
from chaosk3s.report.cli import report_command

_friendly = friendly()


def _progress(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chaostoolkit-k3s")
def main() -> None:
    """Prove that K3s split-role clusters heal."""


main.add_command(report_command)
main.add_command(gameday_group)
main.add_command(consent_command)
main.add_command(abort_command)
main.add_command(cleanup_command)
main.add_command(faults_command)
main.add_command(lab)
main.add_command(matrix_command)


@main.command("plan")
@click.argument("experiment", type=click.Path(exists=True, dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="KEY[:TYPE]=VALUE",
              callback=validate_vars,
              help="Override a configuration key, exactly as `chaos run "
              "--var` (TYPE: int, float, bytes...).")
@click.option("--var-file", "var_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A JSON/YAML file of configuration and secrets, or a "
              ".env file, exactly as `chaos run --var-file`.")
@click.option("--scripts", is_flag=True,
              help="Also print the full shell script run on each node.")
@_friendly
def plan_command(experiment: str, variables: dict, var_files: tuple,
                 scripts: bool) -> None:
    """Print what EXPERIMENT would change on which node, or what `chaos
    run` would refuse it for; change nothing."""
    from chaosk3s.plan import Refused, describe
    try:
        click.echo(describe(experiment, variables, var_files, scripts))
    except Refused as exc:
        click.echo("chaos run would refuse this run (nothing would be "
                   "injected):", err=True)
        for line in str(exc).splitlines():
            click.echo(f"  {line}", err=True)
        sys.exit(1)


@main.command("variables")
@click.argument("experiments", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@_friendly
def variables_command(experiments: tuple[str, ...]) -> None:
    """Print the variables each EXPERIMENT declares (type, default,
    environment variable, meaning) as Markdown tables."""
    from pathlib import Path

    from chaosk3s.variables import markdown
    click.echo(markdown([Path(e) for e in experiments]), nl=False)


if __name__ == "__main__":
    main()
