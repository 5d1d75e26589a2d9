"""Training batches: sentences of similar length (tf.data bucketing), encoded to ids in the input
pipeline, off the network's critical path. No sentence is truncated; padding is per batch."""
from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter

import keras
import tensorflow as tf

from pipeline.corpus import Sentence
from pipeline.model import PAD

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
