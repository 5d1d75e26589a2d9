import random

import numpy as np
import tensorflow as tf

from pipeline.data.corpus import Sentence
from pipeline.model.network import build_encoder
from pipeline.training.batches import LENGTH_BUCKETS, encode_tokens, make_dataset

WORDS = ["the", "Berlin", "in", "lives", "Peter", "."]
CHARS = list(dict.fromkeys("theBrlinvsP."))
TAGS = ["O", "B-LOC", "B-PER"]


def sentences(count: int) -> list[Sentence]:
    """Sentences of every bucket's lengths (1 to 70 tokens), known and unknown words and chars."""
    rng = random.Random(0)
    pool = WORDS + ["Zürich", "x"]
    made = []
    for i in range(count):
        tokens = [rng.choice(pool) for _ in range(rng.randint(1, 70))]
        made.append(Sentence(tokens, [rng.choice(TAGS) for _ in tokens], line=i + 1))
    return made


def sentence_by_sentence(data: list[Sentence], encoder, batch_size: int, seed: int) -> tf.data.Dataset:
    """The plain way: each sentence sliced out of the encoded ids, bucketed and padded by tf.data."""
    ids = encode_tokens(data, encoder)
    labels = tf.constant([TAGS.index(tag) for s in data for tag in s.tags], dtype=tf.int32)
    lengths = [len(s.tokens) for s in data]
    starts = np.cumsum([0] + lengths[:-1]).tolist()
    dataset = tf.data.Dataset.from_tensor_slices((starts, lengths)).shuffle(len(data), seed=seed)
    dataset = dataset.map(lambda start, length: (
        {name: values[start : start + length] for name, values in ids.items()}, labels[start : start + length]))
    return dataset.bucket_by_sequence_length(
        lambda ids, labels: tf.shape(labels)[0], LENGTH_BUCKETS, [batch_size] * (len(LENGTH_BUCKETS) + 1),
        padded_shapes=({name: [None, *values.shape[1:]] for name, values in ids.items()}, [None]),
        padding_values=({name: tf.constant(0, values.dtype) for name, values in ids.items()}, -1))


def test_batches_are_the_sentence_by_sentence_ones_in_every_epoch():
    """The batches, their order, shapes, ids and padding do not depend on how they are cut out, so
    the models trained on them do not either."""
    data = sentences(300)
    encoder = build_encoder(WORDS, CHARS, False, 8, casing=True)
    ours, plain = make_dataset(data, encoder, TAGS, 16, shuffle_seed=7), sentence_by_sentence(data, encoder, 16, 7)
    for epoch in range(2):
        pairs = list(zip(ours, plain, strict=True))
        assert len(pairs) == int(ours.cardinality())  # what Keras is told an epoch holds
        assert len({tuple(labels.shape) for _, (_, labels) in pairs}) > 5  # several buckets and partial batches
        for (ids, labels), (expected_ids, expected_labels) in pairs:
            assert set(ids) == set(expected_ids) == {"word_ids", "casing_ids", "char_ids"}
            for name in ids:
                assert ids[name].dtype == expected_ids[name].dtype
                np.testing.assert_array_equal(ids[name].numpy(), expected_ids[name].numpy(), err_msg=name)
            np.testing.assert_array_equal(labels.numpy(), expected_labels.numpy())
        assert (pairs[0][0][1].numpy() == -1).any()  # padding marked in the labels


def test_an_epoch_holds_every_token_once():
    data = sentences(50)
    encoder = build_encoder(WORDS, None, False, 8)
    labels = [b[1].numpy() for b in make_dataset(data, encoder, TAGS, 4, shuffle_seed=1)]
    assert sum(int((batch >= 0).sum()) for batch in labels) == sum(len(s.tokens) for s in data)


def test_the_batches_start_no_tf_data_autotuning_thread():
    """Keras makes a new iterator each epoch and deletes the last, whose destructor waited for tf.data's
    autotuning thread to wake: a training sat idle for 8-10 s at the start of some epochs (most often
    with two trainings at once). Nothing here needs tuning: one cheap map, a fixed prefetch."""
    dataset = make_dataset(sentences(20), build_encoder(WORDS, None, False, 8), TAGS, 4, shuffle_seed=1)
    assert dataset.options().autotune.enabled is False
