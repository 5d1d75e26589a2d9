"""Writing files so that readers never see half of one: a temporary file beside the target,
fsync'ed, then a rename (and the folder fsync'ed, so the rename survives a power cut too); and,
inside `all_or_none()`, several files renamed only once every one of them is written, so a
failure (a full disk, say) leaves the previous files, or none, never a mix. Files get the mode
the process umask gives (0644 under the usual 022), like any file the user's tools write."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from pipeline.errors import PipelineError

# inside all_or_none(): the (temporary file, target) pairs waiting for their rename
_pending: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("pending_renames", default=None)
NO_ROOM = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
           errno.EFBIG: "file too large for the limits set on this process"}


def umask_mode(mode: int = 0o666) -> int:
    """`mode` less the process umask (read by setting it, so set it straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def replace_durably(temp: Path, path: Path) -> None:
    os.replace(temp, path)
    fsync_folder(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, umask_mode())  # mkstemp makes it 0600
        pending = _pending.get()
        if pending is None:
            replace_durably(Path(temp), path)
        else:
            pending.append((Path(temp), path))
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        raise_if_no_room(error, path, f"writing {len(data) / 1e6:.1f} MB")
        raise


def raise_if_no_room(error: BaseException, path: str | os.PathLike, doing: str) -> None:
    """A full disk (or quota, or file size limit) as one line naming the file; other errors pass."""
    if isinstance(error, OSError) and error.errno in NO_ROOM:
        raise PipelineError(f"{path}: {NO_ROOM[error.errno]} {doing}; nothing of this step was replaced; free some "
                            "space and run it again") from None


@contextmanager
def all_or_none():
    """Writes inside this block take effect together, when it ends without an error."""
    pending: list[tuple[Path, Path]] = []
    token = _pending.set(pending)
    try:
        yield
    except BaseException:
        for temp, _ in pending:
            temp.unlink(missing_ok=True)
        raise
    finally:
        _pending.reset(token)
    for temp, path in pending:
        replace_durably(temp, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")
