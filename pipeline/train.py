"""Stage `train@<model>`: train one tagger of params.yaml's `models` once per seed ->
models/<model>/seed_<n>/ (see pipeline/trained.py), one MLflow run per seed.

The taggers share every setting of `model`; each variant changes only what its `models` entry
says (its char encoder, say), so a comparison measures that change alone.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from pipeline import tracking
from pipeline.batches import make_dataset
from pipeline.corpus import Sentence, check_known_tags, read_split
from pipeline.errors import exits_cleanly
from pipeline.layout import MODELS_DIR, model_folder, seed_folder, split_file
from pipeline.metrics import score
from pipeline.model import build_trainable
from pipeline.params import Params, load_params
from pipeline.tagger import Tagger
from pipeline.trained import save_trained
from pipeline.vocabulary import Vocabulary, load_vocabulary


class DevF1(keras.callbacks.Callback):
    """Puts the dev set's entity F1 into the epoch logs as `val_f1`, for early stopping and logging."""

    def __init__(self, tagger: Tagger, dev: list[Sentence], batch_size: int):
        super().__init__()
        self.tagger, self.batch_size = tagger, batch_size
        self.tokens, self.gold = [s.tokens for s in dev], [s.tags for s in dev]

    def on_epoch_end(self, epoch, logs=None):
        logs["val_f1"] = score(self.gold, self.tagger.tag_tokens(self.tokens, self.batch_size))["f1"]


class EpochRecorder(keras.callbacks.Callback):
    """Keeps the learning curve and logs it to MLflow, one step per epoch."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "train_loss": float(logs["loss"]), "dev_f1": float(logs["val_f1"]),
               "seconds": time.perf_counter() - self.started}
        self.rows.append(row)
        tracking.log_epoch(row["epoch"], row["train_loss"], row["dev_f1"], row["seconds"])


def train_tagger(name: str, params: Params, seed: int, train: list[Sentence], dev: list[Sentence],
                 vocabulary: Vocabulary) -> tuple[keras.Model, list[dict]]:
    """Train one tagger with early stopping on dev F1; return it (best epoch's weights) and its curve.

    `seed` sets every random choice: weight initialisation, dropout and the shuffling of batches.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    encoder, trainer, tagger = build_trainable(params.tagger(name), params.train, vocabulary, params.vocab.lowercase,
                                               params.char_vocab.max_word_length)
    recorder = EpochRecorder()
    callbacks = [DevF1(Tagger(tagger), dev, params.evaluate.batch_size),
                 keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=params.train.patience,
                                               restore_best_weights=True),
                 recorder]
    batches = make_dataset(train, encoder, vocabulary.tags, params.train.batch_size, shuffle_seed=seed)
    trainer.fit(batches, epochs=params.train.epochs, callbacks=callbacks, shuffle=False, verbose=2)  # shuffled above
    return tagger, recorder.rows


def train_one_seed(name: str, seed: int, params: Params, train: list[Sentence], dev: list[Sentence],
                   vocabulary: Vocabulary, staging: Path) -> dict:
    """Train one (model, seed) in its own MLflow run and write it under `staging`."""
    sizes = {"n_words": len(vocabulary.words), "n_chars": len(vocabulary.chars), "n_tags": len(vocabulary.tags),
             "train_sentences": len(train)}
    with tracking.training_run(name, seed, params, sizes) as run_id:
        started = time.perf_counter()
        tagger, history = train_tagger(name, params, seed, train, dev, vocabulary)
        seconds = time.perf_counter() - started
        best = max(history, key=lambda row: row["dev_f1"])
        summary = {"model": name, "seed": seed, "mlflow_run_id": run_id, "best_epoch": best["epoch"],
                   "best_dev_f1": best["dev_f1"], "epochs_run": len(history), "train_seconds": round(seconds, 1),
                   "train_tokens_per_second": round(sum(len(s.tokens) for s in train) * len(history) / seconds)}
        tracking.log_training_result(best["epoch"], seconds)
        tagger_file = save_trained(seed_folder(name, seed, staging), tagger, history, summary)
        tracking.log_tagger(tagger_file, name, params.mlflow.register)
    return summary


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    params = load_params()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=list(params.models), help="a tagger of params.yaml's models")
    name = parser.parse_args(argv).model
    spec = params.tagger(name)
    vocabulary = load_vocabulary(spec.word_vectors, spec.word_dim)
    train, dev = read_split("train"), read_split("dev")
    check_known_tags(dev, set(vocabulary.tags), str(split_file("dev")))
    tracking.start_experiment()
    # every seed goes into a staging folder, renamed to models/<name> only when all have trained
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=MODELS_DIR, prefix=f".{name}."))
    try:
        for seed in params.train.seeds:
            print(json.dumps(train_one_seed(name, seed, params, train, dev, vocabulary, staging)))
        target = model_folder(name)
        if target.exists():
            shutil.rmtree(target)
        (staging / name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main()
