"""Stage `train`: train every tagger of params.yaml's `models` once per seed -> models/<model>/
seed_<n>/ (see pipeline/trained.py), one MLflow run per (model, seed).

The taggers share every setting of `model`; each variant changes only what its `models` entry
says (its char encoder, say), so a comparison measures that change alone.

Every (model, seed) pair is one Ray task (pipeline/cluster.py), and all of them are in this one
stage because DVC runs stages one after another: only a single stage lets a cluster run every
training at once. The stage still trains no more than it must: each pair's folder records a
fingerprint of what made it (its settings, seed, data, vocabulary and code), `models/` persists
between runs, and a pair whose fingerprint has not changed is kept. Adding a variant or a seed
trains only the new pairs; a crashed run resumes with the pairs it had not finished.

Workers only compute: the driver (this process) writes each finished pair into place atomically
and logs its MLflow run, so a retried task leaves no duplicate run and no run stuck in RUNNING.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from pipeline import cluster, tracking
from pipeline.batches import make_dataset
from pipeline.commands import parse_stage_args
from pipeline.corpus import Sentence, check_known_tags, in_scheme, read_split
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import fsync_folder
from pipeline.layout import DVC_FILE, MODELS_DIR, model_folder, seed_folder, split_file
from pipeline.metrics import score
from pipeline.model import build_trainable, tag_classes
from pipeline.optimizers import decayed_learning_rate
from pipeline.params import Params, load_params
from pipeline.progress import StageProgress, captured_output, native_stderr_to_log
from pipeline.tagger import Tagger
from pipeline.trained import SUMMARY_FILE, keras_file_bytes, save_trained, tagger_is_intact
from pipeline.vocabulary import Vocabulary, load_vocabulary, trained_word_count

STAGING_PREFIX = ".staging-"  # models/.staging-*: a pair being written; removed on the next run if left over


class DevF1(keras.callbacks.Callback):
    """Puts the dev set's entity F1 into the epoch logs as `val_f1`, for early stopping and logging."""

    def __init__(self, tagger: Tagger, dev: list[Sentence], batch_size: int):
        super().__init__()
        self.tagger, self.batch_size = tagger, batch_size
        self.tokens, self.gold = [s.tokens for s in dev], [s.tags for s in dev]

    def on_epoch_end(self, epoch, logs=None):
        logs["val_f1"] = score(self.gold, self.tagger.tag_tokens(self.tokens, self.batch_size))["f1"]


class EpochReporter(keras.callbacks.Callback):
    """Sends each epoch's row to the driver (a cluster.TaskProgress; printed by pipeline/progress.py)."""

    def __init__(self, recorder: EpochRecorder, progress: cluster.TaskProgress, epochs: int):
        super().__init__()
        self.recorder, self.progress, self.epochs = recorder, progress, epochs

    def on_epoch_end(self, epoch, logs=None):
        self.progress.report({"epochs": self.epochs, **self.recorder.rows[-1]})


class EpochRecorder(keras.callbacks.Callback):
    """Keeps the learning curve, one row per epoch."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, "train_loss": float(logs["loss"]), "dev_f1": float(logs["val_f1"]),
                          "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                          "seconds": time.perf_counter() - self.started})


def train_tagger(name: str, params: Params, seed: int, train: list[Sentence], dev: list[Sentence],
                 vocabulary: Vocabulary, progress: cluster.TaskProgress | None = None
                 ) -> tuple[keras.Model, list[dict]]:
    """Train one tagger with early stopping on dev F1; return it (best epoch's weights) and its curve.

    `seed` sets every random choice: weight initialisation, dropout and the shuffling of batches.
    A loss that stops being finite (too high a learning rate, say) stops the training with an error.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    spec = params.tagger(name)
    encoder, trainer, tagger = build_trainable(
        spec, params.train, vocabulary, params.vocab.lowercase, params.char_vocab.max_word_length,
        trained_word_count(vocabulary.words, train, params.vocab.lowercase))
    recorder = EpochRecorder()
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.LearningRateScheduler(lambda epoch: decayed_learning_rate(params.train, epoch)),
                 DevF1(Tagger(tagger), dev, params.evaluate.batch_size),
                 keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=params.train.patience,
                                               restore_best_weights=True),
                 recorder]
    if progress is not None:
        callbacks.append(EpochReporter(recorder, progress, params.train.epochs))
    batches = make_dataset(in_scheme(train, spec.tag_scheme), encoder, tag_classes(vocabulary.tags, spec.tag_scheme),
                           params.train.batch_size, shuffle_seed=seed)
    trainer.fit(batches, epochs=params.train.epochs, callbacks=callbacks, shuffle=False,  # shuffled above
                verbose=0 if progress is not None else 2)
    last = recorder.rows[-1] if recorder.rows else None
    if last is None or not math.isfinite(last["train_loss"]):
        raise PipelineError(f"{name} seed {seed}: the training loss became {last and last['train_loss']} in epoch "
                            f"{last and last['epoch']}; lower train.learning_rate or set train.clipnorm "
                            f"(now {params.train.learning_rate} and {params.train.clipnorm})")
    return tagger, recorder.rows


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
               vocabulary: Vocabulary, progress: cluster.TaskProgress | None = None) -> TrainedPair:
    """One Ray task: train (name, seed) with params.train.threads TensorFlow threads; its epochs
    go to the driver's `progress` queue, what it prints to the result's `output`."""
    with captured_output() as output:
        tf.config.threading.set_intra_op_parallelism_threads(params.train.threads)
        tf.config.threading.set_inter_op_parallelism_threads(params.train.threads)
        started, clock = time.time(), time.perf_counter()
        tagger, history = train_tagger(name, params, seed, train, dev, vocabulary, progress)
        seconds = time.perf_counter() - clock
        return TrainedPair(keras_file_bytes(tagger), history, started, seconds, cluster.worker_identity(),
                           output())


def fingerprint(params: Params, name: str, seed: int, inputs: dict[str, str]) -> str:
    """What decides the result of training (name, seed): its settings, the input files' and the
    code's digests. An unchanged fingerprint means the pair's folder is still the one it would train."""
    settings = {"tagger": params.tagger(name).model_dump(), "train": params.train.model_dump(exclude={"seeds"}),
                "seed": seed, "lowercase": params.vocab.lowercase,
                "max_word_length": params.char_vocab.max_word_length, "dev_batch_size": params.evaluate.batch_size,
                "register": params.mlflow.register, "inputs": inputs}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def input_digests() -> dict[str, str]:
    """SHA-256 of every file the train stage depends on, as dvc.yaml lists them (its code, data and
    vocabulary): the same inputs that make DVC rerun the stage decide which pairs retrain."""
    try:
        deps = yaml.safe_load(DVC_FILE.read_text())["stages"]["train"]["deps"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise PipelineError(f"{DVC_FILE}: cannot read the train stage's deps ({error})") from None
    files = sorted(file for dep in map(Path, deps) for file in ([dep] if dep.is_file() else dep.rglob("*"))
                   if file.is_file())
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


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


def install(name: str, seed: int, result: TrainedPair, params: Params, expected: str, train: list[Sentence],
            vocabulary: Vocabulary, where: cluster.Cluster) -> dict:
    """Log a finished pair's MLflow run and move its folder into place; return its summary."""
    best = max(result.history, key=lambda row: row["dev_f1"])
    tokens = sum(len(s.tokens) for s in train) * len(result.history)
    summary = {"model": name, "seed": seed, "best_epoch": best["epoch"], "best_dev_f1": best["dev_f1"],
               "epochs_run": len(result.history), "train_seconds": round(result.seconds, 1),
               "train_tokens_per_second": round(tokens / result.seconds), "fingerprint": expected}
    sizes = {"n_words": len(vocabulary.words), "n_chars": len(vocabulary.chars), "n_tags": len(vocabulary.tags),
             "train_sentences": len(train)}
    staging = Path(tempfile.mkdtemp(dir=MODELS_DIR, prefix=STAGING_PREFIX))
    try:
        folder = staging / "pair"
        tags = {**result.worker, "ray.cluster": where.address}
        with tracking.training_run(name, seed, params, sizes, tags, result.started) as run_id:
            summary = {"mlflow_run_id": run_id, **summary}
            tagger_file = save_trained(folder, result.tagger, result.history, summary)
            tracking.log_history(result.history, result.started)
            tracking.log_training_result(best["epoch"], result.seconds)
            tracking.log_tagger(tagger_file, name, params.mlflow.register)
        target = seed_folder(name, seed)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(target)
        fsync_folder(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


COST_ORDER = {"lstm": 0, "cnn": 1, "none": 2}  # the slowest start first, so none waits alone at the end


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("train", argv)
    native_stderr_to_log("train")
    params = load_params()
    vocabulary = load_vocabulary(params.model.word_vectors, params.model.word_dim)
    train, dev = read_split("train"), read_split("dev")
    check_known_tags(dev, set(vocabulary.tags), str(split_file("dev")))
    tracking.start_experiment()  # a tracking server that is down stops the stage here, in seconds
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    clear_stale(params)
    inputs = input_digests()
    expected = {(name, seed): fingerprint(params, name, seed, inputs)
                for name in params.models for seed in params.train.seeds}
    todo = [pair for pair, value in expected.items() if not is_current(*pair, value)]
    for name, seed in sorted(expected.keys() - set(todo)):
        print(f"train: {name} seed {seed} is up to date (same fingerprint), kept")
    if not todo:
        return
    todo.sort(key=lambda pair: COST_ORDER.get(params.tagger(pair[0]).char_encoder, 0))
    where = cluster.connect(params.cluster)
    progress = StageProgress("train", len(todo))
    try:
        progress.say(f"{len(todo)} trainings on {where.describe()}, {params.train.threads} thread(s) each")
        train_ref, dev_ref, vocabulary_ref = cluster.put(train), cluster.put(dev), cluster.put(vocabulary)
        pairs = {f"{name} seed {seed}": (name, seed) for name, seed in todo}
        calls = [(label, (name, seed, params, train_ref, dev_ref, vocabulary_ref))
                 for label, (name, seed) in pairs.items()]
        for label, result in cluster.run_tasks(train_pair, calls, params.train.threads, where,
                                               params.cluster.max_retries, on_progress=progress.epoch):
            name, seed = pairs[label]
            summary = install(name, seed, result, params, expected[name, seed], train, vocabulary, where)
            progress.finished(label, result.output, f"best dev F1 {summary['best_dev_f1']:.2f} in epoch "
                              f"{summary['best_epoch']} of {summary['epochs_run']}, {summary['train_seconds']:.0f} s")
    finally:
        progress.close()
        cluster.shutdown()


if __name__ == "__main__":
    main()
