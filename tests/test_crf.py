"""The CRF against brute-force enumeration of every tag sequence on tiny inputs."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.model.crf import CRF, CRFLoss, log_partition, sequence_score, viterbi_decode

N_TAGS = 3
LENGTHS = [4, 1, 3]  # a batch padded to 4: full, a single token, one padding position


def random_problem(seed: int):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(len(LENGTHS), max(LENGTHS), N_TAGS)).astype("float32")
    transitions, start, end = (rng.normal(size=shape).astype("float32") for shape in [(N_TAGS, N_TAGS), N_TAGS, N_TAGS])
    mask = np.arange(max(LENGTHS))[None] < np.array(LENGTHS)[:, None]
    return scores, mask, transitions, start, end


def brute_force_score(scores, path, transitions, start, end):
    """The score written out from its definition, for one unpadded sentence."""
    total = start[path[0]] + end[path[-1]] + sum(scores[t, tag] for t, tag in enumerate(path))
    return total + sum(transitions[a, b] for a, b in zip(path, path[1:]))


def all_paths(length):
    return list(itertools.product(range(N_TAGS), repeat=length))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_score_and_viterbi_match_brute_force(seed):
    scores, mask, transitions, start, end = random_problem(seed)
    args = (tf.constant(transitions), tf.constant(start), tf.constant(end))
    log_z = log_partition(tf.constant(scores), tf.constant(mask), *args).numpy()
    decoded = viterbi_decode(tf.constant(scores), tf.constant(mask), *args).numpy()
    for i, length in enumerate(LENGTHS):
        by_path = {path: brute_force_score(scores[i], path, transitions, start, end) for path in all_paths(length)}
        np.testing.assert_allclose(log_z[i], np.logaddexp.reduce(list(by_path.values())), rtol=1e-5)
        assert tuple(decoded[i, :length]) == max(by_path, key=by_path.get)
        assert (decoded[i, length:] == decoded[i, length - 1]).all()  # padding repeats the last tag
        # the score of some padded tag sequence ignores whatever tags sit on padding
        path = np.array(list(all_paths(length)[seed * 7 % N_TAGS ** length]) + [2] * (max(LENGTHS) - length))
        got = sequence_score(tf.constant(scores[i : i + 1]), tf.constant(path[None]), tf.constant(mask[i : i + 1]),
                             *args).numpy()[0]
        np.testing.assert_allclose(got, by_path[tuple(path[:length])], rtol=1e-5)


def test_single_token_batches_work_in_a_graph_of_unknown_batch_size():
    scores, _, transitions, start, end = random_problem(3)
    # as in a saved tagger: batch and time unknown when the graph is built
    spec = [tf.TensorSpec((None, None, N_TAGS), tf.float32), tf.TensorSpec((None, None), tf.bool)]
    decode = tf.function(lambda s, m: viterbi_decode(s, m, transitions, start, end), input_signature=spec)
    partition = tf.function(lambda s, m: log_partition(s, m, transitions, start, end), input_signature=spec)
    decoded = decode(scores[:, :1], tf.ones((3, 1), tf.bool)).numpy()
    np.testing.assert_array_equal(decoded[:, 0], np.argmax(scores[:, 0] + start + end, axis=1))
    np.testing.assert_allclose(partition(scores[:, :1], tf.ones((3, 1), tf.bool)).numpy(),
                               np.logaddexp.reduce(scores[:, 0] + start + end, axis=1), rtol=1e-5)


def test_layer_decodes_one_hot_and_its_loss_is_the_negative_log_likelihood():
    scores, mask, transitions, start, end = random_problem(4)
    crf = CRF(N_TAGS)
    crf.build(scores.shape)
    for variable, value in zip([crf.transitions, crf.start, crf.end], [transitions, start, end]):
        variable.assign(value)
    np.testing.assert_array_equal(crf(scores, training=True), scores)  # training: the scores, for the loss
    one_hot = crf(scores, mask=mask).numpy()
    np.testing.assert_array_equal(one_hot.argmax(-1), viterbi_decode(scores, mask, transitions, start, end).numpy())
    labels = np.where(mask, np.arange(max(LENGTHS)) % N_TAGS, -1)  # -1 marks padding
    expected = np.mean([np.logaddexp.reduce([brute_force_score(scores[i], p, transitions, start, end)
                                             for p in all_paths(length)])
                        - brute_force_score(scores[i], labels[i, :length], transitions, start, end)
                        for i, length in enumerate(LENGTHS)])
    np.testing.assert_allclose(CRFLoss(crf)(labels, scores).numpy(), expected, rtol=1e-5)


def test_gradients_reach_transitions_and_training_lowers_the_loss():
    scores, mask, _, _, _ = random_problem(5)
    labels = tf.constant(np.where(mask, 1, -1))
    crf = CRF(N_TAGS)
    crf.build(scores.shape)
    loss = CRFLoss(crf)
    emissions = tf.Variable(scores)
    optimizer = keras.optimizers.Adam(0.1)
    first = None
    for _ in range(30):
        with tf.GradientTape() as tape:
            value = loss(labels, emissions)
        variables = [emissions, *crf.trainable_variables]
        gradients = tape.gradient(value, variables)
        assert all(g is not None for g in gradients)
        optimizer.apply(gradients, variables)
        first = float(value) if first is None else first
    assert float(value) < first / 5
    assert (crf(emissions, mask=mask).numpy().argmax(-1)[mask] == 1).all()
