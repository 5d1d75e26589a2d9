"""A trained (model, seed) folder: what `train` writes and `evaluate`, `predict` and the
benchmark read.

    models/<model>/seed_<n>/tagger.keras   the tagger (raw token strings in, tag strings out)
                            frozen_rows.npy the word vectors it never trained (float16), the same
                                           file in every folder of one run (DVC caches it once)
                            history.csv    the learning curve, one row per epoch
                            summary.json   best epoch, dev F1, training time, MLflow run id
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.corpus import Sentence
from pipeline.data.vocabulary import Vocabulary, frozen_word_rows, trained_word_count
from pipeline.errors import PipelineError
from pipeline.files import file_digest, raise_if_no_room, write_bytes_atomic, write_json_atomic, write_text_atomic
from pipeline.layout import seed_folder

TAGGER_FILE = "tagger.keras"
FROZEN_ROWS_FILE = "frozen_rows.npy"
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"


@dataclass
class TrainedRun:
    model: str
    seed: int
    folder: Path
    summary: dict
    history: list[dict]

    @property
    def tagger_file(self) -> Path:
        return self.folder / TAGGER_FILE


def keras_file_bytes(keras_tagger) -> bytes:
    """The tagger as the bytes of its .keras file (how a training worker sends it to the driver)."""
    with tempfile.TemporaryDirectory() as temp:
        path = Path(temp) / TAGGER_FILE
        try:
            keras_tagger.save(path)
        except OSError as error:
            raise_if_no_room(error, path, "saving the trained tagger")
            raise
        return path.read_bytes()


def frozen_rows_file(vocabulary: Vocabulary, train: list[Sentence], lowercase: bool) -> bytes | None:
    """The .npy file of the word rows a tagger trained on `train` keeps frozen (those of pretrained
    words that training never sees), written beside its tagger.keras; None without pretrained
    vectors. The same bytes for every tagger of one run: the train stage writes it, and each
    training's tagger carries its digest."""
    if vocabulary.word_vectors is None:
        return None
    trained = trained_word_count(vocabulary.words, train, lowercase)
    if trained == len(vocabulary.words):
        return None
    return npy_bytes(frozen_word_rows(vocabulary.word_vectors, trained))


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of its .npy file (the same array, the same bytes)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def tagger_is_intact(folder: Path, summary: dict) -> bool:
    """The folder's tagger.keras (and frozen_rows.npy) are the files its summary.json recorded
    (same SHA-256): not empty, truncated, or another training's."""
    try:
        frozen = summary.get("frozen_rows_sha256")
        return (summary.get("tagger_sha256") == file_digest(folder / TAGGER_FILE)
                and (frozen is None or frozen == file_digest(folder / FROZEN_ROWS_FILE)))
    except OSError:
        return False


def save_trained(folder: Path, tagger_file: bytes, frozen_rows: bytes | None, history: list[dict], summary: dict
                 ) -> Path:
    """Write a seed folder (inside a staging folder that the caller renames into place); return
    the tagger's file. summary.json records the files' SHA-256, written last."""
    folder.mkdir(parents=True)
    write_bytes_atomic(folder / TAGGER_FILE, tagger_file)  # a full disk: one line naming the file
    summary = {**summary, "tagger_sha256": hashlib.sha256(tagger_file).hexdigest()}
    if frozen_rows is not None:
        write_bytes_atomic(folder / FROZEN_ROWS_FILE, frozen_rows)
        summary["frozen_rows_sha256"] = hashlib.sha256(frozen_rows).hexdigest()
    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(folder / HISTORY_FILE, rows.getvalue())
    write_json_atomic(folder / SUMMARY_FILE, summary)
    return folder / TAGGER_FILE


def load_trained(model: str, seed: int) -> TrainedRun:
    """The summary and learning curve of models/<model>/seed_<seed>/ (the tagger stays on disk)."""
    folder = seed_folder(model, seed)
    try:
        if not (folder / TAGGER_FILE).is_file():
            raise FileNotFoundError(f"no {TAGGER_FILE}")
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        with open(folder / HISTORY_FILE, newline="") as file:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]
    except (OSError, ValueError) as error:
        raise PipelineError(f"{folder}: not a trained model folder ({error}); is seed {seed} in train.seeds "
                            f"of the run that trained it?") from None
    return TrainedRun(model, seed, folder, summary, history)


def find_tagger_file(path: Path) -> Path:
    """The tagger.keras of a model folder; for models/<name> with one folder per seed, the seed
    with the best dev F1; in an MLflow model's artifacts, the one it holds."""
    if (path / TAGGER_FILE).is_file():
        return path / TAGGER_FILE
    seeds = sorted(path.glob(f"seed_*/{TAGGER_FILE}"))
    if seeds:
        def best_dev_f1(tagger_file: Path) -> float:
            try:
                return json.loads((tagger_file.parent / SUMMARY_FILE).read_text())["best_dev_f1"]
            except (OSError, ValueError, KeyError):
                return float("-inf")
        return max(seeds, key=best_dev_f1)
    found = sorted(path.rglob(TAGGER_FILE))
    if found:
        return found[0]
    raise PipelineError(f"{path}: not a trained model folder (no {TAGGER_FILE} in it or in seed_*/)")
