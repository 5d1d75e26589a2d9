"""Writes that leave whole files or none: the evaluate stage's set of reports and a trained
pair's folder, under a failure in the middle and a real refused write (RLIMIT_FSIZE)."""
import json
import os
import resource
import signal
import subprocess
import sys

import matplotlib.pyplot as plt
import pytest

from pipeline.evaluation.plots import save
from pipeline.files import all_or_none, write_json_atomic
from tests.conftest import REPO_ROOT


def test_a_set_of_reports_that_fails_midway_leaves_the_previous_set(tmp_path):
    metrics, figure_path = tmp_path / "metrics.json", tmp_path / "figures" / "gains.png"
    write_json_atomic(metrics, {"f1": 1})
    figure_path.parent.mkdir()
    figure_path.write_bytes(b"old figure")
    with pytest.raises(RuntimeError, match="disk gone"):
        with all_or_none():
            write_json_atomic(metrics, {"f1": 2})
            save(plt.figure(), figure_path)
            raise RuntimeError("disk gone")  # say, the next report's write
    assert json.loads(metrics.read_text()) == {"f1": 1} and figure_path.read_bytes() == b"old figure"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["figures", "gains.png", "metrics.json"]
    with all_or_none():
        save(plt.figure(), figure_path)
    assert figure_path.read_bytes().startswith(b"\x89PNG")


def test_a_full_disk_while_a_trained_pair_is_written_is_one_line_naming_the_file(tmp_path):
    """The kernel refuses writes past 100 kB (RLIMIT_FSIZE), as a full disk would."""
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))

    script = ("from pathlib import Path\n"
              "from pipeline.errors import exits_cleanly\n"
              "from pipeline.model.trained import save_trained\n"
              f"exits_cleanly(save_trained)(Path({str(tmp_path / 'pair')!r}), bytes(1_000_000), None,"
              " [{'epoch': 1, 'train_loss': 1.0, 'dev_f1': 50.0, 'seconds': 1.0}], {'model': 'baseline'})\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            preexec_fn=limit_file_size, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'pair' / 'tagger.keras'}: file too large for the limits set on this process writing "
        "1.0 MB; nothing of this step was replaced; free some space and run it again"]
    assert list((tmp_path / "pair").iterdir()) == []  # no temporary file left


def test_written_files_take_the_umask_and_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "metrics.json", {"f1": 1})
        os.umask(0o077)
        write_json_atomic(tmp_path / "private.json", {"f1": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    # each file's bytes before its rename, then the folder holding the rename
    assert [path.endswith(".tmp") for path in synced] == [True, False, True, False]
    assert synced[1] == synced[3] == str(tmp_path)


def test_an_empty_truncated_or_swapped_tagger_is_not_kept(tmp_path):
    from pipeline.model.trained import FROZEN_ROWS_FILE, SUMMARY_FILE, TAGGER_FILE, save_trained, tagger_is_intact

    history = [{"epoch": 1, "train_loss": 1.0, "dev_f1": 50.0, "seconds": 1.0}]
    folder = tmp_path / "seed_42"
    save_trained(folder, b"PK" + bytes(1000), b"NUMPY" + bytes(100), history, {"model": "baseline"})
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert tagger_is_intact(folder, summary)
    for name, intact in ((TAGGER_FILE, b"PK" + bytes(1000)), (FROZEN_ROWS_FILE, b"NUMPY" + bytes(100))):
        for damaged in (b"", intact[: len(intact) // 2], intact[:-1] + b"x"):
            (folder / name).write_bytes(damaged)
            assert not tagger_is_intact(folder, summary)
        (folder / name).unlink()
        assert not tagger_is_intact(folder, summary)
        (folder / name).write_bytes(intact)
        assert tagger_is_intact(folder, summary)
