"""Where the project's files are, for stages run by `dvc repro`, `dvc exp run` or by hand."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root. DVC sets DVC_ROOT for stage commands, and for queued experiments
    (which run in temporary copies) points it at the original repository; by hand, the stages
    run from the root."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def resolve_local(location: str) -> Path:
    """A relative local path from params.yaml is relative to the repository root."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else project_root() / path
