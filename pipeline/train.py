"""Stage `train@<model>`: train one tagger -> models/<model>/ (the tagger, its history, its MLflow run).

Both taggers share every setting; `char_cnn` adds the char-CNN token features, nothing else.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf

from pipeline.char_vocab import CHARS_FILE
from pipeline.conll import Sentence, check_known_tags, load_split, split_path
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.metrics import score
from pipeline.model import PAD, build_encoder, build_network, build_tagger, tag_sentences, tagging_loss
from pipeline.optimizers import LazyAdam
from pipeline.params import Params, load_params
from pipeline.report import BASELINE, CHAR_MODEL
from pipeline.serving import log_tagger_model
from pipeline.tagger import TAGGER_FILE
from pipeline.tracking import flat_params, run_tags, start_experiment
from pipeline.vocab import TAGS_FILE, VECTORS_FILE, WORDS_FILE, read_list, read_vectors

MODELS = {BASELINE: "none", CHAR_MODEL: "cnn"}  # model name -> char encoder
MODELS_DIR = Path("models")
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.csv"
LENGTH_BUCKETS = [8, 16, 24, 32, 48, 64]  # sentence lengths; a batch holds sentences of one bucket


def make_dataset(sentences: list[Sentence], encoder: keras.Model, tags: list[str], batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """(ids, tag ids) batches of sentences of similar length; tag id -1 marks padding."""
    tag_ids = {tag: i for i, tag in enumerate(tags)}
    # all sentences as flat tensors plus (start, length) per sentence: dense elements for padded batching
    tokens = tf.constant([token for s in sentences for token in s.tokens], dtype=tf.string)
    labels = tf.constant([tag_ids[tag] for s in sentences for tag in s.tags], dtype=tf.int32)
    lengths = [len(s.tokens) for s in sentences]
    starts = list(itertools.accumulate([0] + lengths[:-1]))
    dataset = tf.data.Dataset.from_tensor_slices((starts, lengths))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda start, length: (tokens[start : start + length], labels[start : start + length]))
    dataset = dataset.bucket_by_sequence_length(
        lambda tokens, labels: tf.shape(tokens)[0], LENGTH_BUCKETS, [batch_size] * (len(LENGTH_BUCKETS) + 1),
        padded_shapes=([None], [None]), padding_values=(PAD, -1))
    # tell Keras the epoch's length (bucketing hides it), for its progress bar and end-of-data check
    per_bucket = Counter(bisect.bisect_right(LENGTH_BUCKETS, length) for length in lengths)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(
        sum(math.ceil(count / batch_size) for count in per_bucket.values())))
    encode = lambda tokens, labels: (encoder(tokens), labels)
    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class DevF1(keras.callbacks.Callback):
    """Puts the dev set's entity F1 into the epoch logs as `val_f1`, for early stopping and logging."""

    def __init__(self, tagger: keras.Model, dev: list[Sentence], batch_size: int):
        super().__init__()
        self.tagger, self.batch_size = tagger, batch_size
        self.tokens, self.gold = [s.tokens for s in dev], [s.tags for s in dev]

    def on_epoch_end(self, epoch, logs=None):
        predicted = tag_sentences(self.tagger, self.tokens, self.batch_size)
        logs["val_f1"] = score(self.gold, predicted)["f1"]


class EpochRecorder(keras.callbacks.Callback):
    """Keeps the learning curve and logs it to the active MLflow run, one step per epoch."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "train_loss": float(logs["loss"]), "dev_f1": float(logs["val_f1"]),
               "seconds": time.perf_counter() - self.started}
        self.rows.append(row)
        if mlflow.active_run():
            mlflow.log_metrics({"train_loss": row["train_loss"], "val_f1": row["dev_f1"],
                                "epoch_seconds": row["seconds"]}, step=row["epoch"])


def build_for_training(name: str, params: Params, words: list[str], chars: list[str], tags: list[str],
                       word_vectors: np.ndarray | None = None) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(encoder, compiled training model, tagger) of model `name`; seed first for repeatable weights."""
    with_chars = MODELS[name] == "cnn"
    encoder = build_encoder(words, chars if with_chars else None, params.vocab.lowercase,
                            params.char_vocab.max_word_length, params.model.casing)
    # lookup ids = vocabulary + padding + OOV
    network = build_network(len(words) + 2, len(chars) + 2 if with_chars else None, len(tags), params.model,
                            word_vectors)
    # compile a twin that shares the network's layers: the saved tagger then holds an uncompiled
    # network, and the CRF loss (which refers to the CRF layer) stays out of the file
    trainer = keras.Model(network.inputs, network.outputs, name="trainer")
    trainer.compile(optimizer=LazyAdam(params.train.learning_rate, clipnorm=params.train.clipnorm),
                    loss=tagging_loss(network, params.model))
    return encoder, trainer, build_tagger(encoder, network, tags)


def train_tagger(name: str, params: Params, seed: int, train: list[Sentence], dev: list[Sentence],
                 words: list[str], chars: list[str], tags: list[str],
                 word_vectors: np.ndarray | None = None) -> tuple[keras.Model, list[dict]]:
    """Train one tagger with early stopping on dev F1; return it (best epoch's weights) and its curve.

    `seed` sets every random choice: weight initialisation, dropout and the shuffling of batches.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    encoder, trainer, tagger = build_for_training(name, params, words, chars, tags, word_vectors)
    recorder = EpochRecorder()
    callbacks = [DevF1(tagger, dev, params.evaluate.batch_size),
                 keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=params.train.patience,
                                               restore_best_weights=True),
                 recorder]
    batches = make_dataset(train, encoder, tags, params.train.batch_size, shuffle_seed=seed)
    trainer.fit(batches, epochs=params.train.epochs, callbacks=callbacks, shuffle=False, verbose=2)  # shuffled above
    return tagger, recorder.rows


def seed_folder(name: str, seed: int, root: Path = MODELS_DIR) -> Path:
    return root / name / f"seed_{seed}"


def write_seed_folder(folder: Path, tagger: keras.Model, history: list[dict], summary: dict) -> None:
    folder.mkdir(parents=True)
    tagger.save(folder / TAGGER_FILE)
    with open(folder / HISTORY_FILE, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def train_one_seed(name: str, seed: int, params: Params, data: dict, staging: Path) -> dict:
    """Train one (model, seed) in its own MLflow run and write it under `staging`."""
    train, dev = data["train"], data["dev"]
    mlflow_tags = {**run_tags(f"train@{name}"), "model": name, "seed": str(seed)}
    with mlflow.start_run(run_name=f"{name}-seed{seed}", tags=mlflow_tags) as run:
        mlflow.log_params({**flat_params(params), "model_name": name, "seed": seed, "char_encoder": MODELS[name],
                           "n_words": len(data["words"]), "n_chars": len(data["chars"]), "n_tags": len(data["tags"]),
                           "train_sentences": len(train)})
        started = time.perf_counter()
        tagger, history = train_tagger(name, params, seed, train, dev, data["words"], data["chars"], data["tags"],
                                       data["word_vectors"])
        seconds = time.perf_counter() - started
        best = max(history, key=lambda row: row["dev_f1"])
        summary = {"model": name, "seed": seed, "mlflow_run_id": run.info.run_id, "best_epoch": best["epoch"],
                   "best_dev_f1": best["dev_f1"], "epochs_run": len(history), "train_seconds": round(seconds, 1),
                   "train_tokens_per_second": round(sum(len(s.tokens) for s in train) * len(history) / seconds)}
        mlflow.log_metrics({"best_epoch": best["epoch"], "train_seconds": seconds})
        folder = seed_folder(name, seed, staging)
        write_seed_folder(folder, tagger, history, summary)
        requirements = [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}",
                        f"mlflow=={mlflow.__version__}", f"seqeval=={version('seqeval')}"]
        mlflow.keras.log_model(tagger, name="model", pip_requirements=requirements)
        log_tagger_model(folder / TAGGER_FILE, name, params.mlflow.register, requirements)
    return summary


def load_training_data(params: Params) -> dict:
    """The vocabulary stages' outputs and the train and dev sentences."""
    data = {"words": read_list(WORDS_FILE), "chars": read_list(CHARS_FILE), "tags": read_list(TAGS_FILE),
            "train": load_split("train", params.data.limit), "dev": load_split("dev", params.data.limit)}
    check_known_tags(data["dev"], set(data["tags"]), str(split_path("dev")))
    data["word_vectors"] = (read_vectors(VECTORS_FILE, len(data["words"]), params.model.word_dim)
                            if params.model.word_vectors != "none" else None)
    return data


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help=f"one of: {', '.join(MODELS)}")
    name = parser.parse_args(argv).model
    if name not in MODELS:
        raise PipelineError(f"unknown model {name!r} (expected one of: {', '.join(MODELS)})")
    params = load_params()
    data = load_training_data(params)
    start_experiment()
    # every seed goes into a staging folder, renamed to models/<name> only when all have trained
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=MODELS_DIR, prefix=f".{name}."))
    try:
        for seed in params.train.seeds:
            print(json.dumps(train_one_seed(name, seed, params, data, staging)))
        target = MODELS_DIR / name
        if target.exists():
            shutil.rmtree(target)
        (staging / name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main()
