"""The one exception type every stage raises for bad input, and the way stages report it."""
import ctypes
import functools
import signal
import sys
import threading


class PipelineError(Exception):
    """Bad input (data, params, model folder, network): the message names the file, line, URL or key."""


INTERRUPTED = "what had finished is kept and nothing is half-written; run the same command again to go on"


def stop_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def end_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when the process that started it dies (`dvc repro`
    killed with -9, say), so that no stage or tool runs on as an orphan; SIGTERM then unwinds it
    like Ctrl-C. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def exits_cleanly(main):
    """Turn a PipelineError into one clear line on stderr and exit status 1, and Ctrl-C into one line and
    status 130 (what the shell reports for SIGINT), without a traceback. Everything the commands
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
        except KeyboardInterrupt:
            print(f"interrupted: {INTERRUPTED}", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
