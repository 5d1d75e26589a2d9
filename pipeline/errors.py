"""The one exception type every stage raises for bad input, and the way stages report it."""
import ctypes
import functools
import os
import signal
import sys
import threading


class PipelineError(Exception):
    """Bad input (data, params, model folder, network): the message names the file, line, URL or key."""


INTERRUPTED = "what had finished is kept and nothing is half-written; run the same command again to go on"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's, `kill`): unwinds like Ctrl-C, exits with 143 as the shell reports it."""


def stop_on_sigterm(signum, frame):
    raise Terminated


def end_with_parent() -> None:
    """Under DVC (which sets DVC_STAGE for the commands it runs), ask Linux to send this process
    SIGTERM when the dvc process that started it dies (killed with -9, say), so that no stage runs
    on as an orphan; SIGTERM then unwinds it like Ctrl-C. Not for commands started by hand: a
    `nohup ... &` must outlive the shell that started it. Elsewhere than Linux a no-op."""
    if not sys.platform.startswith("linux") or not os.environ.get("DVC_STAGE"):
        return
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def exits_cleanly(main):
    """Turn a PipelineError into one clear line on stderr and exit status 1, and Ctrl-C (SIGTERM) into
    one line and status 130 (143), what the shell reports for them, without a traceback. Everything the commands
    write is atomic, so an interrupted one leaves what it finished and nothing half-written."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        # a SIGTERM (a scheduler's, `kill`) unwinds like Ctrl-C: open MLflow runs end FAILED, staging is removed
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop_on_sigterm)
            end_with_parent()
        try:
            return main(*args, **kwargs)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt as interruption:
            print(f"interrupted: {INTERRUPTED}", file=sys.stderr)
            raise SystemExit(143 if isinstance(interruption, Terminated) else 130) from None

    return wrapper
