"""Which (model, seed) pairs the train stage must train, the Ray task that trains one, and
putting a finished one in place.

Each pair's folder (models/<model>/seed_<n>/) records a fingerprint of what made it: its
settings, seed, data, vocabulary and code. `models/` persists between runs, so a pair whose
fingerprint is unchanged is kept; a crashed run resumes with the pairs it had not finished.
A finished pair is written into a staging folder and renamed into place, so a pair is whole or
absent.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.data.corpus import Sentence
from pipeline.data.vocabulary import Vocabulary
from pipeline.errors import PipelineError
from pipeline.files import fsync_folder
from pipeline.layout import DVC_FILE, MODELS_DIR, model_folder, seed_folder
from pipeline.model.trained import SUMMARY_FILE, keras_file_bytes, tagger_is_intact
from pipeline.params import Params
from pipeline.progress import captured_output
from pipeline.training import cluster

STAGING_PREFIX = ".staging-"  # models/.staging-*: a pair being written; removed on the next run if left over


def fingerprint(params: Params, name: str, seed: int, inputs: dict[str, str]) -> str:
    """What decides the result of training (name, seed): its settings, the input files' and the
    code's digests. An unchanged fingerprint means the pair's folder is still the one it would train."""
    settings = {"tagger": params.tagger(name).model_dump(), "train": params.train.model_dump(exclude={"seeds"}),
                "seed": seed, "lowercase": params.vocab.lowercase,
                "max_word_length": params.char_vocab.max_word_length, "dev_batch_size": params.evaluate.batch_size,
                "inputs": inputs}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def input_digests() -> dict[str, str]:
    """SHA-256 of every file the train stage depends on, as dvc.yaml lists them (its code, data and
    vocabulary): the same inputs that make DVC rerun the stage decide which pairs retrain."""
    try:
        deps = yaml.safe_load(DVC_FILE.read_text())["stages"]["train"]["deps"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise PipelineError(f"{DVC_FILE}: cannot read the train stage's deps ({error})") from None
    files = sorted(file for dep in map(Path, deps) for file in ([dep] if dep.is_file() else dep.rglob("*"))
                   if file.is_file() and not is_compiled(file))
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def is_compiled(path: Path) -> bool:
    """Python's bytecode cache beside the code (ignored by DVC too, .dvcignore): not an input."""
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def is_current(name: str, seed: int, expected: str) -> bool:
    """The pair's folder is what training it now would give: same fingerprint, and a tagger file
    that is the one its training wrote (a truncated or swapped file is trained again)."""
    folder = seed_folder(name, seed)
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return False
    return summary.get("fingerprint") == expected and tagger_is_intact(folder, summary)


def clear_stale(params: Params) -> None:
    """Remove staging folders a killed run left behind and the folders of pairs no longer in params."""
    for staging in MODELS_DIR.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging)
    for folder in MODELS_DIR.iterdir():
        if folder.is_dir() and folder.name not in params.models:
            shutil.rmtree(folder)
    for name in params.models:
        for folder in model_folder(name).glob("seed_*"):
            if folder.name not in {f"seed_{seed}" for seed in params.train.seeds}:
                shutil.rmtree(folder)



COST_ORDER = {"lstm": 0, "cnn": 1, "none": 2}  # the slowest start first, so none waits alone at the end


def plan(params: Params) -> tuple[dict[tuple[str, int], str], list[tuple[str, int]]]:
    """Every (model, seed) pair's fingerprint, and the pairs to train (slowest first); clears what
    a killed run or a removed model left in models/ and says which pairs are kept."""
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    clear_stale(params)
    inputs = input_digests()
    expected = {(name, seed): fingerprint(params, name, seed, inputs)
                for name in params.models for seed in params.train.seeds}
    todo = [pair for pair, value in expected.items() if not is_current(*pair, value)]
    for name, seed in sorted(expected.keys() - set(todo)):
        print(f"train: {name} seed {seed} is up to date (same fingerprint), kept")
    todo.sort(key=lambda pair: COST_ORDER.get(params.tagger(pair[0]).char_encoder, 0))
    return expected, todo


def pair_summary(name: str, seed: int, result: TrainedPair, train: list[Sentence], expected: str) -> dict:
    """What summary.json records of a finished training (its MLflow run id joins it when logged)."""
    best = max(result.history, key=lambda row: row["dev_f1"])
    tokens = sum(len(s.tokens) for s in train) * len(result.history)
    return {"model": name, "seed": seed, "best_epoch": best["epoch"], "best_dev_f1": best["dev_f1"],
            "epochs_run": len(result.history), "train_seconds": round(result.seconds, 1),
            "train_tokens_per_second": round(tokens / result.seconds), "fingerprint": expected}


@contextmanager
def staged_pair(name: str, seed: int):
    """A staging folder for (name, seed) to write into; renamed to models/<name>/seed_<seed> when
    the block ends without error, removed otherwise."""
    staging = Path(tempfile.mkdtemp(dir=MODELS_DIR, prefix=STAGING_PREFIX))
    try:
        folder = staging / "pair"
        yield folder
        target = seed_folder(name, seed)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(target)
        fsync_folder(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_recipe(params: Params, train: list[Sentence], train_file: str) -> None:
    """A batch larger than the training set is a mistake in params.yaml, not a recipe: stop before training."""
    if params.train.batch_size > len(train):
        raise PipelineError(f"params.yaml: train.batch_size: {params.train.batch_size} is more than the {len(train)} "
                            f"sentences of {train_file}; lower it")


@dataclass
class TrainedPair:
    """What a training task sends back to the driver: everything needed to write and log the pair."""
    tagger: bytes   # the tagger.keras file
    history: list[dict]
    started: float  # time.time() when the training began
    seconds: float
    worker: dict[str, str]
    output: str = ""  # what the training printed (TensorFlow's notices), for logs/


def train_pair(name: str, seed: int, params: Params, train: list[Sentence], dev: list[Sentence],
               vocabulary: Vocabulary, fingerprint: str, progress: cluster.TaskProgress | None = None
               ) -> TrainedPair:
    """One Ray task: train (name, seed) with params.train.threads TensorFlow threads, the tagger
    carrying `fingerprint` (what summary.json will record); its epochs go to the driver's
    `progress` queue, what it prints to the result's `output`.

    TensorFlow is imported here, in the worker: the processes that send these tasks (the train
    stage, the search) only write files and log runs, and skip its import (about 7 s each)."""
    with captured_output() as output:
        from pipeline.training import fit  # noqa: PLC0415  (TensorFlow; see above)
        fit.use_threads(params.train.threads)
        started, clock = time.time(), time.perf_counter()
        tagger, history = fit.train_tagger(name, params, seed, train, dev, vocabulary, progress, fingerprint)
        seconds = time.perf_counter() - clock
        return TrainedPair(keras_file_bytes(tagger), history, started, seconds, cluster.worker_identity(),
                           output())
