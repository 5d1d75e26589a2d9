"""What a long stage prints while it runs: one line per training per epoch, a line for the stage
as a whole after each training, and the full logs in files under logs/ (named at the start).

Workers send their epochs through the driver (pipeline/training/cluster.py), so lines from trainings that
run at once never merge, and their own output (TensorFlow's runtime notices) goes to the files."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from pipeline.layout import LOGS_DIR, project_root


def log_file(stage: str) -> Path:
    return project_root() / LOGS_DIR / f"{stage}.log"


def native_stderr_to_log(stage: str) -> None:
    """From here on, what C++ libraries write to stderr (TensorFlow's notices, say) goes to
    logs/<stage>.log, while Python's sys.stderr (error lines, tracebacks) stays on the terminal."""
    path = log_file(stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(log, 2)
    os.close(log)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class StageProgress:
    """Progress of `total` trainings of stage `stage`, printed and kept in logs/<stage>.log."""

    def __init__(self, stage: str, total: int):
        self.stage, self.total, self.done, self.started = stage, total, 0, time.monotonic()
        self.folder = project_root() / LOGS_DIR / stage
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = open(log_file(stage), "a", encoding="utf-8")
        self.say(f"full logs: {self.log.name} and {self.folder}/")

    def say(self, text: str) -> None:
        line = f"{self.stage}: {text}"
        print(line, flush=True)
        self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        self.log.flush()

    def epoch(self, row: dict) -> None:
        """A row sent by a training's EpochReporter, with its task's key."""
        width = len(str(row["epochs"]))
        self.say(f"{row['task']}  epoch {row['epoch']:>{width}}/{row['epochs']}  loss {row['train_loss']:.4f}  "
                 f"dev F1 {row['dev_f1']:.2f}  {row['seconds']:.0f} s")

    def finished(self, label: str, output: str, summary: str) -> None:
        self.done += 1
        (self.folder / f"{label.replace(' ', '_')}.log").write_text(output, encoding="utf-8")
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        self.say(f"{label} done: {summary}")
        self.say(f"{self.done} of {self.total} trainings done in {minutes(elapsed)}"
                 + (f", about {minutes(left)} left" if self.done < self.total else ""))

    def close(self) -> None:
        self.log.close()


@contextlib.contextmanager
def captured_output():
    """Everything the process writes to stdout and stderr (C++ libraries included) inside the
    block goes to a temporary file; yields a callable that returns it as text."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)

        def text() -> str:
            sys.stdout.flush()
            sys.stderr.flush()
            file.seek(0)
            return file.read().decode("utf-8", errors="replace")

        try:
            yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
