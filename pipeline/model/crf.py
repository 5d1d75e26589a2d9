"""A linear-chain CRF output layer: negative log-likelihood training, Viterbi decoding, learned
transition, start and end scores (Lample et al. 2016; Ma & Hovy 2016).

Hand-written because no maintained Keras 3 CRF exists (tensorflow-addons is archived and does not
support Keras 3). The three functions are pure and tested against brute-force enumeration.
Shapes: scores (batch, time, tags) float; tags (batch, time) int; mask (batch, time) bool, each
row True for the sentence's tokens then False for padding (right padding, at least one token).
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


def _time_major(tensor: tf.Tensor) -> tf.Tensor:
    return tf.transpose(tensor, [1, 0] + list(range(2, len(tensor.shape))))


def sequence_score(scores, tags, mask, transitions, start, end) -> tf.Tensor:
    """(batch,) unnormalised score of the given tag sequences."""
    weights = tf.cast(mask, scores.dtype)
    emitted = tf.reduce_sum(tf.gather(scores, tags, axis=2, batch_dims=2) * weights, axis=1)
    moves = tf.gather_nd(transitions, tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1))
    moved = tf.reduce_sum(moves * weights[:, 1:], axis=1)
    last = tf.gather(tags, tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, batch_dims=1)
    return emitted + moved + tf.gather(start, tags[:, 0]) + tf.gather(end, last)


def log_partition(scores, mask, transitions, start, end) -> tf.Tensor:
    """(batch,) log of the sum of exp(score) over all tag sequences (the forward algorithm)."""

    def step(alpha, inputs):
        emitted, real = inputs
        advanced = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emitted
        return tf.where(real[:, None], advanced, alpha)  # padding carries the last real token's alpha

    alpha = tf.foldl(step, (_time_major(scores)[1:], _time_major(mask)[1:]), initializer=start + scores[:, 0])
    return tf.reduce_logsumexp(alpha + end, axis=1)


def viterbi_decode(scores, mask, transitions, start, end) -> tf.Tensor:
    """(batch, time) int32 best tag sequences; padding positions repeat the last real tag."""
    # one extra padding step, so the scan below never runs over zero steps (one-token batches):
    # tf.scan cannot stack an empty result when the batch size is unknown, as in a saved model
    scores = tf.pad(scores, [[0, 0], [0, 1], [0, 0]])
    mask = tf.pad(mask, [[0, 0], [0, 1]], constant_values=False)
    n_tags = tf.shape(scores)[2]
    unchanged = tf.broadcast_to(tf.range(n_tags)[None], tf.shape(scores[:, 0]))

    def step(state, inputs):
        best, _ = state
        emitted, real = inputs
        candidates = best[:, :, None] + transitions[None]  # (batch, from, to)
        advanced = tf.reduce_max(candidates, axis=1) + emitted
        came_from = tf.argmax(candidates, axis=1, output_type=tf.int32)
        # padding keeps the score and points each tag at itself, so backtracking passes through it
        return tf.where(real[:, None], advanced, best), tf.where(real[:, None], came_from, unchanged)

    first = start + scores[:, 0]
    bests, came_froms = tf.scan(step, (_time_major(scores)[1:], _time_major(mask)[1:]),
                                initializer=(first, unchanged))
    final = bests[-1] + end
    last_tag = tf.argmax(final, axis=1, output_type=tf.int32)
    earlier = tf.scan(lambda tag, pointers: tf.gather(pointers, tag, batch_dims=1), came_froms,
                      initializer=last_tag, reverse=True)
    return tf.transpose(tf.concat([earlier, last_tag[None]], axis=0))[:, :-1]


@keras.saving.register_keras_serializable(package="ner")
class CRF(layers.Layer):
    """Per-token tag scores -> in training, the scores themselves (CRFLoss turns them into the
    sequence NLL); otherwise the Viterbi path, one-hot, so the tag decoder's argmax reads it."""

    def __init__(self, n_tags: int, **kwargs):
        super().__init__(**kwargs)
        self.n_tags = n_tags
        self.supports_masking = True

    def build(self, input_shape):
        self.transitions = self.add_weight(shape=(self.n_tags, self.n_tags), initializer="zeros", name="transitions")
        self.start = self.add_weight(shape=(self.n_tags,), initializer="zeros", name="start")
        self.end = self.add_weight(shape=(self.n_tags,), initializer="zeros", name="end")

    def call(self, scores, mask=None, training=None):
        if training:
            return tf.identity(scores)  # a new tensor: the input's padding mask must not reach the loss
        mask = tf.ones(tf.shape(scores)[:2], tf.bool) if mask is None else tf.cast(mask, tf.bool)
        path = viterbi_decode(scores, mask, self.transitions, self.start, self.end)
        return tf.one_hot(path, self.n_tags, dtype=scores.dtype)

    def log_likelihood(self, scores, tags, mask) -> tf.Tensor:
        args = (self.transitions, self.start, self.end)
        return sequence_score(scores, tags, mask, *args) - log_partition(scores, mask, *args)

    def compute_mask(self, scores, mask=None):
        return None  # the loss is per sentence; it reads padding from the labels (-1)

    def get_config(self):
        return {**super().get_config(), "n_tags": self.n_tags}


class CRFLoss(keras.losses.Loss):
    """Mean negative log-likelihood per sentence; labels are tag ids, -1 marking padding."""

    def __init__(self, crf: CRF):
        super().__init__(name="crf_nll")
        self.crf = crf

    def call(self, y_true, y_pred):
        tags = tf.cast(y_true, tf.int32)
        return -self.crf.log_likelihood(y_pred, tf.maximum(tags, 0), tags >= 0)
