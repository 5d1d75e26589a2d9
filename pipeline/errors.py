"""The one exception type every stage raises for bad input, and the way stages report it."""
import functools
import sys


class PipelineError(Exception):
    """Bad input (data, params, model folder, network): the message names the file, line, URL or key."""


def exits_cleanly(main):
    """Turn a PipelineError into one clear line on stderr and exit status 1, without a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper
