"""Training one tagger: the fit loop with early stopping on dev entity F1 and the callbacks that
record and report each epoch. The Ray task that runs it (pairs.train_pair, for the train stage and
the search) imports this module in the worker: only there is TensorFlow needed."""
from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from pipeline.data.corpus import Sentence, in_scheme
from pipeline.data.vocabulary import Vocabulary, trained_word_count
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import score
from pipeline.model.forward import layout_of
from pipeline.model.network import build_trainable, tag_classes
from pipeline.model.optimizers import decayed_learning_rate
from pipeline.model.tagger import Tagger, tagger_identity
from pipeline.model.trained import frozen_rows_file
from pipeline.params import Params
from pipeline.training import cluster
from pipeline.training.batches import make_dataset


class DevF1(keras.callbacks.Callback):
    """Puts the dev set's entity F1 into the epoch logs as `val_f1`, for early stopping and logging.
    It tags through the NumPy forward pass of the epoch's weights (the same tags as the Keras graph,
    in about half the time, and no inference graph to trace: 2-5 s per training)."""

    def __init__(self, keras_tagger: keras.Model, dev: list[Sentence], batch_size: int):
        super().__init__()
        self.keras_tagger, self.batch_size = keras_tagger, batch_size
        self.layout = layout_of(keras_tagger)  # its layers and vocabularies: the same every epoch
        self.tokens, self.gold = [s.tokens for s in dev], [s.tags for s in dev]

    def on_epoch_end(self, epoch, logs=None):
        tagger = Tagger.in_training(self.keras_tagger, self.layout)
        logs["val_f1"] = score(self.gold, tagger.tag_tokens(self.tokens, self.batch_size))["f1"]


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


def use_threads(threads: int) -> None:
    """TensorFlow's thread pools for this process: set before its first op, fixed after."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def train_tagger(name: str, params: Params, seed: int, train: list[Sentence], dev: list[Sentence],
                 vocabulary: Vocabulary, progress: cluster.TaskProgress | None = None, fingerprint: str = ""
                 ) -> tuple[keras.Model, list[dict]]:
    """Train one tagger with early stopping on dev F1; return it (best epoch's weights) and its curve.

    `seed` sets every random choice: weight initialisation, dropout and the shuffling of batches.
    A loss that stops being finite or diverges (too high a learning rate, say) stops the training
    with an error, whatever the clipping.
    """
    # a Ray worker trains several pairs in turn: each starts from Keras' global state of a fresh
    # process (layer names, seed state), not from what the previous training left
    keras.backend.clear_session()
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
                 DevF1(tagger, dev, params.evaluate.batch_size),
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
