"""Training batches: sentences of similar length (tf.data bucketing), as ids. No sentence is
truncated; padding is per batch.

The token encoder runs once over the whole training set before the first epoch (one call over
every token), not once per batch and epoch: the ids of a token never change, and re-encoding
strings every epoch cost ~28 ms of CPU per char_cnn step, a quarter of the step (TF profiler).
tf.data shuffles and buckets only each sentence's (start, length) in those ids; a batch's ids are
then cut out in one gather per batch, not sliced and padded sentence by sentence (half the input
pipeline's CPU per epoch, the same batches in the same order)."""
from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter

import keras
import tensorflow as tf

from pipeline.data.corpus import Sentence

LENGTH_BUCKETS = [8, 16, 24, 32, 48, 64]  # sentence lengths; a batch holds sentences of one bucket


def encode_tokens(sentences: list[Sentence], encoder: keras.Model) -> dict[str, tf.Tensor]:
    """Every token of `sentences`, in order, as the encoder's ids: {name: (tokens, ...)}."""
    tokens = tf.constant([[token for s in sentences for token in s.tokens]], dtype=tf.string)
    return {name: ids[0] for name, ids in encoder(tokens).items()}


def cut_out(ids: dict[str, tf.Tensor], labels: tf.Tensor, starts: tf.Tensor, lengths: tf.Tensor
            ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """The batch of sentences (starts[i], lengths[i]) of the flat `ids` and `labels`, right-padded to
    its longest with id 0 and tag id -1."""
    positions = tf.range(tf.reduce_max(lengths))
    inside = positions[None, :] < lengths[:, None]  # (sentences, longest)
    flat = tf.where(inside, starts[:, None] + positions[None, :], 0)

    def take(values: tf.Tensor, padding: int) -> tf.Tensor:
        rows = tf.gather(values, flat)
        keep = tf.reshape(inside, tf.concat([tf.shape(inside), tf.ones([tf.rank(rows) - 2], tf.int32)], 0))
        return tf.where(keep, rows, tf.constant(padding, values.dtype))

    return {name: take(values, 0) for name, values in ids.items()}, take(labels, -1)


def make_dataset(sentences: list[Sentence], encoder: keras.Model, tags: list[str], batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """(ids, tag ids) batches of sentences of similar length; id 0 and tag id -1 mark padding."""
    tag_ids = {tag: i for i, tag in enumerate(tags)}
    # all sentences as flat tensors plus (start, length) per sentence: what tf.data shuffles and buckets
    ids = encode_tokens(sentences, encoder)
    labels = tf.constant([tag_ids[tag] for s in sentences for tag in s.tags], dtype=tf.int32)
    lengths = [len(s.tokens) for s in sentences]
    starts = list(itertools.accumulate([0] + lengths[:-1]))
    dataset = tf.data.Dataset.from_tensor_slices((starts, lengths))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.bucket_by_sequence_length(
        lambda start, length: length, LENGTH_BUCKETS, [batch_size] * (len(LENGTH_BUCKETS) + 1))
    dataset = dataset.map(lambda starts, lengths: cut_out(ids, labels, starts, lengths))
    # tell Keras the epoch's length (bucketing hides it), for its progress bar and end-of-data check
    per_bucket = Counter(bisect.bisect_right(LENGTH_BUCKETS, length) for length in lengths)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(
        sum(math.ceil(count / batch_size) for count in per_bucket.values())))
    # tf.data's autotuning thread is off: nothing here to tune (one cheap map), and at each epoch's end
    # Keras drops the epoch's iterator, whose destructor waits for that thread's sleep to end
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)
