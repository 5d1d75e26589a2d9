"""The one exception type every stage raises for bad input, and the way stages report it."""
import functools
import signal
import sys
import threading


class PipelineError(Exception):
    """Bad input (data, params, model folder, network): the message names the file, line, URL or key."""


def stop_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def exits_cleanly(main):
    """Turn a PipelineError into one clear line on stderr and exit status 1, without a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        # a SIGTERM (a scheduler's, `kill`) unwinds like Ctrl-C: open MLflow runs end FAILED, staging is removed
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            return main(*args, **kwargs)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper
