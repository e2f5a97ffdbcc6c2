"""What every chaosk3s command shares: errors as one clear line."""

import functools
import sys

import click

from chaosk3s.errors import ChaosK3sError


def friendly(exit_code: int = 1):
    """Print chaosk3s errors as one line on stderr and exit with
    exit_code, without a traceback (game days use 2: "an error", as
    distinct from 1: "a deviation")."""
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except ChaosK3sError as exc:
                click.echo(f"chaosk3s: error: {exc}", err=True)
                sys.exit(exit_code)
        return wrapper
    return decorate
