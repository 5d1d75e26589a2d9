"""Training one tagger: the fit loop with early stopping on dev entity F1, the callbacks that
record and report each epoch, and `train_pair`, the Ray task that the train stage and the search
both run (each training returns its tagger as bytes; the caller writes and logs it)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras
import tensorflow as tf

from pipeline.data.corpus import Sentence, in_scheme
from pipeline.data.vocabulary import Vocabulary, trained_word_count
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import score
from pipeline.model.network import build_trainable, frozen_word_rows, tag_classes
from pipeline.model.optimizers import decayed_learning_rate
from pipeline.model.tagger import Tagger, tagger_identity
from pipeline.model.trained import keras_file_bytes, npy_bytes
from pipeline.params import Params
from pipeline.progress import captured_output
from pipeline.training import cluster
from pipeline.training.batches import make_dataset


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


class StopOnDivergence(keras.callbacks.Callback):
    """Stops the training once an epoch's loss exceeds `bound` (see divergence_bound)."""

    def __init__(self, bound: float):
        super().__init__()
        self.bound = bound

    def on_epoch_end(self, epoch, logs=None):
        if not logs["loss"] <= self.bound:  # also NaN
            self.model.stop_training = True


DIVERGENCE_FACTOR = 10


def divergence_bound(train: list[Sentence], n_classes: int) -> float:
    """The loss beyond which a training has diverged: 10 times what a uniform guess costs per
    sentence (mean sentence length x ln(classes); the CRF's loss is per sentence, the softmax's per
    token, so this bounds both). Trainings here start near one uniform guess and fall from there;
    a loss ten times worse means the weights have blown up, and gradient clipping alone does not
    prevent that with a learning rate far too large (clipping bounds the step's gradient, not the
    step)."""
    mean_length = sum(len(s.tokens) for s in train) / len(train)
    return DIVERGENCE_FACTOR * mean_length * math.log(max(n_classes, 2))


def frozen_rows_file(vocabulary: Vocabulary, train: list[Sentence], lowercase: bool) -> bytes | None:
    """The .npy file of the word rows a tagger trained on `train` keeps frozen (those of pretrained
    words that training never sees), written beside its tagger.keras; None without pretrained
    vectors. The same bytes for every tagger of one run: the train stage writes it from here too."""
    if vocabulary.word_vectors is None:
        return None
    trained = trained_word_count(vocabulary.words, train, lowercase)
    if trained == len(vocabulary.words):
        return None
    return npy_bytes(frozen_word_rows(vocabulary.word_vectors, trained))


def check_recipe(params: Params, train: list[Sentence], train_file: str) -> None:
    """A batch larger than the training set is a mistake in params.yaml, not a recipe: stop before training."""
    if params.train.batch_size > len(train):
        raise PipelineError(f"params.yaml: train.batch_size: {params.train.batch_size} is more than the {len(train)} "
                            f"sentences of {train_file}; lower it")


def train_tagger(name: str, params: Params, seed: int, train: list[Sentence], dev: list[Sentence],
                 vocabulary: Vocabulary, progress: cluster.TaskProgress | None = None, fingerprint: str = ""
                 ) -> tuple[keras.Model, list[dict]]:
    """Train one tagger with early stopping on dev F1; return it (best epoch's weights) and its curve.

    `seed` sets every random choice: weight initialisation, dropout and the shuffling of batches.
    A loss that stops being finite or diverges (too high a learning rate, say) stops the training
    with an error, whatever the clipping.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    spec = params.tagger(name)
    with_chars = spec.char_encoder != "none"
    frozen = frozen_rows_file(vocabulary, train, params.vocab.lowercase)
    identity = tagger_identity(name, fingerprint, vocabulary.words, vocabulary.chars if with_chars else None,
                               frozen)
    encoder, trainer, tagger = build_trainable(
        spec, params.train, vocabulary, params.vocab.lowercase, params.char_vocab.max_word_length,
        trained_word_count(vocabulary.words, train, params.vocab.lowercase), identity)
    recorder = EpochRecorder()
    classes = tag_classes(vocabulary.tags, spec.tag_scheme)
    bound = divergence_bound(train, len(classes))
    callbacks = [keras.callbacks.TerminateOnNaN(), StopOnDivergence(bound),
                 keras.callbacks.LearningRateScheduler(lambda epoch: decayed_learning_rate(params.train, epoch)),
                 DevF1(Tagger(tagger), dev, params.evaluate.batch_size),
                 keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=params.train.patience,
                                               restore_best_weights=True),
                 recorder]
    if progress is not None:
        callbacks.append(EpochReporter(recorder, progress, params.train.epochs))
    batches = make_dataset(in_scheme(train, spec.tag_scheme), encoder, classes, params.train.batch_size,
                           shuffle_seed=seed)
    trainer.fit(batches, epochs=params.train.epochs, callbacks=callbacks, shuffle=False,  # shuffled above
                verbose=0 if progress is not None else 2)
    last = recorder.rows[-1] if recorder.rows else None
    if last is None or not last["train_loss"] <= bound:
        loss, epoch = (last["train_loss"], last["epoch"]) if last else (float("nan"), 1)
        why = f", beyond {bound:.0f} (10x a uniform guess): diverged" if math.isfinite(loss) else ""
        raise PipelineError(f"{name} seed {seed}: the training loss became {loss:.3g} in epoch {epoch}{why}; lower "
                            f"train.learning_rate or set train.clipnorm (now {params.train.learning_rate} and "
                            f"{params.train.clipnorm})")
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
               vocabulary: Vocabulary, fingerprint: str, progress: cluster.TaskProgress | None = None
               ) -> TrainedPair:
    """One Ray task: train (name, seed) with params.train.threads TensorFlow threads, the tagger
    carrying `fingerprint` (what summary.json will record); its epochs go to the driver's
    `progress` queue, what it prints to the result's `output`."""
    with captured_output() as output:
        tf.config.threading.set_intra_op_parallelism_threads(params.train.threads)
        tf.config.threading.set_inter_op_parallelism_threads(params.train.threads)
        started, clock = time.time(), time.perf_counter()
        tagger, history = train_tagger(name, params, seed, train, dev, vocabulary, progress, fingerprint)
        seconds = time.perf_counter() - clock
        return TrainedPair(keras_file_bytes(tagger), history, started, seconds, cluster.worker_identity(),
                           output())


