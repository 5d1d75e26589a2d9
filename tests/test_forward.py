"""The NumPy forward pass (pipeline/model/forward.py) tags exactly as the Keras graph it was read
from, for every kind of tagger it runs; a tagger it does not run is tagged by its graph."""
import keras
import numpy as np
import pytest

from pipeline.data.vocabulary import frozen_word_rows
from pipeline.model.casing import casing_class
from pipeline.model.forward import graph_weights, saved_weights
from pipeline.model.network import build_encoder, build_network, build_tagger, tag_classes
from pipeline.model.numpy_layers import lstm, reversed_each, viterbi
from pipeline.model.tagger import Tagger
from pipeline.model.trained import FROZEN_ROWS_FILE, npy_bytes
from pipeline.params import TaggerParams
from tests.test_model import CHARS, PARAMS, TAGS, WORDS

SENTENCES = [["Peter", "lives", "in", "Berlin", "."], ["the"], ["ÜBER", "İstanbul", "Zürich", "x4y", "1996"],
             ["Supercalifragilisticexpialidocious", "lives", "in", "the", "the", "Berlin", "Peter", "lives", "in"],
             ["Peter", "."], ["in", "in", "in"]]
VARIANTS = {
    "char_cnn crf casing lowercase frozen": dict(char_encoder="cnn", lowercase=True, trained_words=3),
    "char_lstm softmax": dict(char_encoder="lstm", decoder="softmax", casing=False),
    "no chars, two layers, bioes": dict(char_encoder="none", rnn_layers=2, tag_scheme="bioes"),
    "char_cnn width 5, two layers": dict(char_encoder="cnn", char_kernel_size=5, rnn_layers=2, decoder="softmax"),
}


def saved_tagger(folder, char_encoder, lowercase=False, trained_words=None, **options):
    """A tagger with random weights large enough to give varied tags, saved to `folder`; returns
    the Keras graph it was saved from."""
    params = TaggerParams(**{**PARAMS.model.model_dump(), "word_vectors": "none", "word_dim": 16,
                             "char_encoder": char_encoder, **options})
    keras.utils.set_random_seed(1)
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), 16)).astype("float32")
    classes = tag_classes(TAGS, params.tag_scheme)
    encoder = build_encoder(WORDS, CHARS if char_encoder != "none" else None, lowercase, 8, params.casing)
    network = build_network(len(WORDS) + 2, len(CHARS) + 2, len(classes), params, vectors, trained_words)
    rng = np.random.default_rng(2)
    for weight in network.weights:
        if weight.trainable:
            weight.assign(rng.normal(0, 0.7, weight.shape).astype("float32"))
    keras_tagger = build_tagger(encoder, network, classes)
    folder.mkdir()
    keras_tagger.save(folder / "tagger.keras")
    if trained_words is not None:
        (folder / FROZEN_ROWS_FILE).write_bytes(npy_bytes(frozen_word_rows(vectors, trained_words)))
    return keras_tagger


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_forward_pass_tags_as_the_keras_graph(tmp_path, options):
    graph = Tagger.of_graph(saved_tagger(tmp_path / "tagger", **options))
    loaded = Tagger.from_file(tmp_path / "tagger/tagger.keras")
    assert loaded.forward is not None and loaded.model is None
    expected = graph.tag_tokens(SENTENCES)
    assert len({tag for tags in expected for tag in tags}) >= 3  # varied tags: the comparison can fail
    assert loaded.tag_tokens(SENTENCES) == expected
    assert loaded.tag_tokens(SENTENCES, batch_size=2) == expected  # other batches, tokens already encoded
    assert [loaded.tag_tokens([sentence])[0] for sentence in SENTENCES] == expected
    assert loaded.tags == graph.tags
    # the weights read from the file without Keras are the graph's, layer by layer (the frozen word
    # rows are beside the file)
    from_file, in_memory = saved_weights(tmp_path / "tagger/tagger.keras"), graph_weights(graph.model)
    in_memory["word_embedding"] = in_memory["word_embedding"][:1]
    assert from_file.keys() == in_memory.keys()
    for name, arrays in in_memory.items():
        assert len(from_file[name]) == len(arrays) and all(map(np.array_equal, from_file[name], arrays)), name


def test_a_tagger_built_where_a_gpu_was_is_tagged_alike(tmp_path, monkeypatch):
    """There the word BiLSTMs are Keras' own Bidirectional(LSTM) layers (cuDNN), with other weight
    names. (A char BiLSTM built there does not load on a CPU at all: CharBiLSTM makes its inner
    layer for the machine it is loaded on.)"""
    import tensorflow as tf
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else real(kind))
    graph = Tagger.of_graph(saved_tagger(tmp_path / "tagger", "cnn", rnn_layers=2))
    monkeypatch.undo()
    assert type(graph.model.get_layer("network").get_layer("bidirectional")).__name__ == "Bidirectional"
    loaded = Tagger.from_file(tmp_path / "tagger/tagger.keras")
    assert loaded.forward is not None
    assert loaded.tag_tokens(SENTENCES) == graph.tag_tokens(SENTENCES)


def test_past_its_limit_the_token_cache_starts_afresh_and_tags_alike(tmp_path, monkeypatch):
    from pipeline.model import forward
    graph = Tagger.of_graph(saved_tagger(tmp_path / "tagger", "cnn"))
    loaded = Tagger.from_file(tmp_path / "tagger/tagger.keras")
    monkeypatch.setattr(forward, "CACHE_LIMIT", 6)
    expected = graph.tag_tokens(SENTENCES)
    # one sentence at a time: known tokens and new ones in one batch, past the limit
    assert [loaded.tag_tokens([sentence])[0] for sentence in SENTENCES] == expected
    assert len(loaded.forward.known) <= 9  # the longest sentence's distinct tokens at most


def test_a_gru_tagger_is_tagged_by_its_keras_graph(tmp_path):
    graph = Tagger.of_graph(saved_tagger(tmp_path / "tagger", "cnn", cell="gru"))
    loaded = Tagger.from_file(tmp_path / "tagger/tagger.keras")
    assert loaded.forward is None and loaded.model is not None
    assert loaded.tag_tokens(SENTENCES) == graph.tag_tokens(SENTENCES)


def test_lstm_steps_only_the_rows_still_running():
    """Rows longest first: a row's states past its end are 0, and its states before are those of
    the row run alone."""
    rng = np.random.default_rng(0)
    projected = rng.normal(size=(4, 2, 3, 8)).astype(np.float32)
    recurrent = rng.normal(size=(2, 2, 8)).astype(np.float32)
    lengths = np.array([4, 2, 1])
    states = lstm(lambda t, rows: projected[t, :, :rows], 4, recurrent, lengths)
    for row, length in enumerate(lengths):
        alone = lstm(lambda t, rows: projected[t, :, row:row + rows], length, recurrent, lengths[row:row + 1])
        np.testing.assert_array_equal(states[:length, :, row:row + 1], alone)
        assert not states[length:, :, row].any()


def test_reversed_each_reverses_each_row_up_to_its_length():
    x = np.arange(8).reshape(4, 2)  # (time, batch)
    assert reversed_each(x, np.array([4, 2])).tolist() == [[6, 3], [4, 1], [2, 5], [0, 7]]


def test_viterbi_finds_the_best_path_by_brute_force():
    rng = np.random.default_rng(3)
    scores, transitions = rng.normal(size=(4, 2, 3)), rng.normal(size=(3, 3))
    start, end = rng.normal(size=3), rng.normal(size=3)
    lengths = np.array([4, 3])
    paths = viterbi(scores, lengths, transitions, start, end)
    for row, length in enumerate(lengths):
        def total(path):
            return (start[path[0]] + end[path[-1]] + sum(scores[t, row, tag] for t, tag in enumerate(path))
                    + sum(transitions[a, b] for a, b in zip(path, path[1:])))
        best = max(np.ndindex(*[3] * length), key=total)
        assert tuple(paths[:length, row]) == best


EDGE_TOKENS = ["1996", "3-1/2", "peter", "EU", "Zürich", "x4y", "-", "élan", "ÉCU", "İstanbul", "ΣΟΦΟΣ",
               "Straße", "ǅemal", "ﬁne", "Ⅻ", "١٢٣", "O'Neill", "iPhone", "ß", "ǈ", "", "𝐀𝐁", "ÅSA-ÅS"]


def test_the_string_rules_agree_with_the_taggers_layers_on_every_conll_token(real_train, real_dev):
    """The forward pass lower-cases and classifies casing in Python (pipeline/model/forward.py);
    the tagger's Lowercase and CasingIds layers define the rules."""
    import tensorflow as tf

    from pipeline.model.layers import CasingIds, Lowercase
    tokens = sorted({token for sentence in real_train + real_dev for token in sentence.tokens} | set(EDGE_TOKENS[:-3]))
    tokens += EDGE_TOKENS[-2:]  # never in the corpus: astral characters, a hyphenated upper-case word
    lowered = [word.decode("utf-8") for word in Lowercase()(tf.constant(tokens)).numpy()]
    assert [token.lower() for token in tokens] == lowered
    real = [token for token in tokens if token]  # "" is padding
    assert [casing_class(token) for token in real] == CasingIds()(tf.constant([real])).numpy()[0].tolist()


def test_tagging_runs_numpy_s_blas_on_one_thread_and_gives_the_rest_back(tmp_path, monkeypatch):
    """A second BLAS thread gives these small products no speed and takes a core from whatever runs
    beside (the other training of a dvc repro): the forward pass limits NumPy's BLAS to one thread
    while it tags, and only then."""
    import threadpoolctl

    from pipeline.model import numpy_layers

    def blas_threads():
        return {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"}

    saved_tagger(tmp_path / "tagger", "lstm")
    loaded = Tagger.from_file(tmp_path / "tagger/tagger.keras")
    seen, lstm_of_numpy = [], numpy_layers.lstm
    monkeypatch.setattr(numpy_layers, "lstm", lambda *args: seen.append(blas_threads()) or lstm_of_numpy(*args))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # as on a 2-core machine, whatever this one has
        assert loaded.tag_tokens(SENTENCES) and seen and all(threads == {1} for threads in seen)
        assert blas_threads() == {2}
