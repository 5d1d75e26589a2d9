import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.data.vocabulary import Vocabulary, frozen_word_rows
from pipeline.errors import PipelineError
from pipeline.model.bilstm import FusedBiLSTM
from pipeline.model.casing import CASINGS
from pipeline.model.forward import layout_of
from pipeline.model.layers import CharBiLSTM, CharCNN, WordDropout
from pipeline.model.network import (
    build_encoder,
    build_network,
    build_tagger,
    output_tags,
    pad_batch,
    tag_classes,
)
from pipeline.model.tagger import Tagger
from pipeline.model.trained import FROZEN_ROWS_FILE, npy_bytes
from pipeline.params import TaggerParams, load_params
from pipeline.stages.char_vocab import build_char_vocab
from pipeline.stages.vocab import build_tag_list, build_word_vocab
from pipeline.training.fit import divergence_bound, train_tagger
from tests.conftest import REPO_ROOT

PARAMS = load_params(REPO_ROOT / "params.yaml")
MODEL_OPTIONS = [dict(decoder="softmax", casing=False), dict(decoder="crf", casing=True),
                 dict(decoder="softmax", casing=True), dict(decoder="crf", casing=False)]
WORDS = ["the", "Berlin", "in", "lives", "Peter", "."]
CHARS = list(dict.fromkeys("theBrlinvsP."))
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


CHAR_ENCODERS = ["none", "cnn", "lstm"]


def tag(keras_tagger, sentences, batch_size=256):
    return Tagger.of_graph(keras_tagger).tag_tokens(sentences, batch_size)


def make_tagger(char_encoder: str, lowercase: bool = False, word_vectors=None, **model_options):
    params = TaggerParams(**{**PARAMS.model.model_dump(), "word_vectors": "none", "word_dim": 16,
                             "char_encoder": char_encoder, **model_options})
    encoder = build_encoder(WORDS, CHARS if char_encoder != "none" else None, lowercase, 8, params.casing)
    network = build_network(len(WORDS) + 2, len(CHARS) + 2, len(TAGS), params, word_vectors)
    return encoder, network, build_tagger(encoder, network, TAGS)


def test_encoder_maps_strings_to_ids_inside_the_graph():
    encoder, _, _ = make_tagger("cnn")
    ids = encoder(pad_batch([["Peter", "lives", "in", "Zürich"], ["the"]]))
    assert ids["word_ids"].numpy().tolist() == [[6, 5, 4, 1], [2, 0, 0, 0]]  # 0 padding, 1 unknown
    chars = ids["char_ids"].numpy()
    assert chars.shape == (2, 4, 8)
    assert chars[0, 3, :6].tolist()[1] == 1 and chars[0, 3, 6:].tolist() == [0, 0]  # ü unknown, then padding
    assert (chars[1, 1:] == 0).all()


def test_casing_ids_classify_tokens():
    encoder = build_encoder(WORDS, None, False, 8, casing=True)
    tokens = ["1996", "3-1/2", "peter", "EU", "Zürich", "x4y", "-", "élan", "ÉCU", ""]
    expected = ["numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper", "contains_digit", "other",
                "all_lower", "all_upper"]
    ids = encoder(np.array([tokens], dtype=object))["casing_ids"].numpy()[0].tolist()
    assert ids == [CASINGS.index(name) + 1 for name in expected] + [0]  # 0: padding


def test_lowercase_option_lowercases_unicode_before_lookup():
    encoder = build_encoder(["berlin", "über"], None, lowercase=True, max_word_length=8)
    assert encoder(pad_batch([["BERLIN", "Über", "Paris"]]))["word_ids"].numpy().tolist() == [[2, 3, 1]]


def test_word_vectors_initialise_their_rows_and_others_stay_random():
    vectors = np.full((len(WORDS), 16), np.nan, dtype="float32")
    vectors[0] = 0.5  # "the"
    _, network, _ = make_tagger("none", word_vectors=vectors)
    table = network.get_layer("word_embedding").rows()
    np.testing.assert_array_equal(table[2], 0.5)
    assert np.abs(table[3:]).max() < 0.06 and np.abs(table[3:]).min() > 0  # Keras' uniform(-0.05, 0.05)


def test_words_training_never_sees_are_frozen_stored_beside_the_tagger_in_float16_and_the_rest_learn(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), 16)).astype("float32")
    # no word dropout (the default's 0.05 would sometimes train the OOV row: a flaky test)
    params = TaggerParams(**{**PARAMS.model.model_dump(), "word_vectors": "none", "word_dim": 16,
                             "char_encoder": "none", "decoder": "softmax", "casing": False, "word_dropout": 0.0})
    encoder = build_encoder(WORDS, None, False, 8)
    network = build_network(len(WORDS) + 2, 2, len(TAGS), params, vectors, trained_words=3)  # the, Berlin, in
    embedding = network.get_layer("word_embedding")
    # computed in float32 (oneDNN lacks float16 kernels on some CPUs), rounded as float16 stores them
    assert embedding.frozen.dtype == "float32" and not embedding.frozen.trainable
    assert [w.name for w in network.trainable_weights].count("frozen_embeddings") == 0
    np.testing.assert_array_equal(embedding.rows()[5:], vectors[3:].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(embedding.frozen_rows(), frozen_word_rows(vectors, 3))
    before = embedding.rows()
    network.compile(optimizer=keras.optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    ids = encoder(pad_batch([["Peter", "lives", "in", "Berlin", "."]]))
    network.fit(ids, np.array([[3, 0, 0, 1, 0]]), epochs=1, verbose=0)
    changed = np.abs(embedding.rows() - before).max(axis=1) > 0
    assert changed.tolist() == [False, False, False, True, True, False, False, False]  # pad, OOV, the | ... | frozen
    # the .keras file leaves the frozen rows out; they come back exactly from their float16 file beside it
    tagger = build_tagger(encoder, network, TAGS)
    tagger.save(tmp_path / "tagger.keras")
    with zipfile.ZipFile(tmp_path / "tagger.keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        stored = []
        weights.visititems(lambda name, item: stored.append((name, item.shape))
                           if "word_embedding" in name and isinstance(item, h5py.Dataset) else None)
    assert [shape for _, shape in stored] == [(5, 16)]  # padding, OOV and the 3 trained words' rows only
    (tmp_path / FROZEN_ROWS_FILE).write_bytes(npy_bytes(frozen_word_rows(vectors, 3)))
    loaded = Tagger.from_file(tmp_path / "tagger.keras").forward
    np.testing.assert_array_equal(np.concatenate([loaded.trained, loaded.frozen]), embedding.rows())


def test_word_dropout_replaces_words_by_oov_in_training_only():
    layer = WordDropout(0.3, seed=1)
    ids = np.tile(np.array([[5, 7, 9, 1, 0, 0]]), (2000, 1))
    dropped = layer(ids, training=True).numpy()
    assert (dropped[:, 4:] == 0).all() and (dropped[:, 3] == 1).all()  # padding and OOV stay
    share = (dropped[:, :3] == 1).mean()
    assert 0.27 < share < 0.33 and ((dropped[:, :3] == 1) | (dropped[:, :3] == ids[:, :3])).all()
    np.testing.assert_array_equal(layer(ids, training=False).numpy(), ids)


def test_variational_dropout_drops_the_same_features_at_every_token():
    inputs = np.ones((64, 12, 20), dtype="float32")
    for variational in (True, False):
        _, network, _ = make_tagger("none", variational_dropout=variational)
        kept = network.get_layer("input_dropout")(inputs, training=True).numpy() > 0
        same_at_every_token = (kept == kept[:, :1]).all()
        assert same_at_every_token == variational and 0.4 < kept.mean() < 0.6
        np.testing.assert_array_equal(network.get_layer("input_dropout")(inputs, training=False), inputs)


@pytest.mark.parametrize("char_encoder", ["cnn", "lstm"])
def test_char_dropout_acts_in_training_only_and_survives_saving(char_encoder, tmp_path):
    encoder, network, tagger = make_tagger(char_encoder, char_dropout=0.5)
    char_ids = encoder(pad_batch([["Peter", "lives", "in", "Berlin", "."]] * 8))["char_ids"]
    layer = network.get_layer("char_encoder")
    assert layer.dropout.rate == 0.5
    inference = layer(char_ids, training=False).numpy()
    np.testing.assert_array_equal(inference, layer(char_ids).numpy())
    assert not np.allclose(layer(char_ids, training=True).numpy(), inference)
    tagger.save(tmp_path / "tagger.keras")
    loaded = keras.saving.load_model(tmp_path / "tagger.keras").get_layer("network").get_layer("char_encoder")
    assert loaded.dropout.rate == 0.5
    np.testing.assert_allclose(loaded(char_ids, training=False).numpy(), inference, atol=1e-6)


def test_stacked_rnn_layers_each_read_the_one_below():
    _, one, _ = make_tagger("cnn")
    encoder, two, tagger = make_tagger("cnn", rnn_layers=2, variational_dropout=True)
    names = [layer.name for layer in two.layers]
    assert names.index("bidirectional") < names.index("dropout_1") < names.index("bidirectional_2") < names.index(
        "output_dropout")
    kernels = {w.name: w.shape for w in two.get_layer("bidirectional_2").weights}
    assert kernels["forward_kernel"] == (2 * PARAMS.model.units, 4 * PARAMS.model.units)  # reads both directions
    assert two.count_params() > one.count_params()
    assert {"bidirectional_2", "dropout_1"}.isdisjoint(layer.name for layer in one.layers)
    assert len(tag(tagger, [["Peter", "lives", "in", "Berlin", "."]])[0]) == 5


def test_a_bioes_network_learns_bioes_classes_and_the_tagger_outputs_iob2():
    classes = tag_classes(TAGS, "bioes")
    assert classes == ["O", "B-LOC", "S-LOC", "I-LOC", "E-LOC", "B-PER", "S-PER", "I-PER", "E-PER"]
    assert output_tags(classes) == ["O", "B-LOC", "B-LOC", "I-LOC", "I-LOC", "B-PER", "B-PER", "I-PER", "I-PER"]
    params = TaggerParams(**{**PARAMS.model.model_dump(), "word_vectors": "none", "word_dim": 16,
                             "char_encoder": "none", "tag_scheme": "bioes", "casing": False})
    encoder = build_encoder(WORDS, None, False, 8)
    tagger = build_tagger(encoder, build_network(len(WORDS) + 2, 2, len(classes), params), classes)
    assert Tagger.of_graph(tagger).tags == TAGS
    assert set(tag(tagger, [["Peter", "lives", "in", "Berlin"]])[0]) <= set(TAGS)


@pytest.mark.parametrize("options", MODEL_OPTIONS)
@pytest.mark.parametrize("char_encoder", CHAR_ENCODERS)
def test_network_shapes_and_the_only_difference_is_the_char_encoder(char_encoder, options):
    encoder, network, _ = make_tagger(char_encoder, **options)
    outputs = network(encoder(pad_batch([["Peter", "lives", "in", "Berlin", "."], ["the"]]))).numpy()
    assert outputs.shape == (2, 5, len(TAGS))
    np.testing.assert_allclose(outputs.sum(-1), 1.0, rtol=1e-5)  # probabilities, or the CRF's Viterbi one-hots
    if options["decoder"] == "crf":
        assert set(np.unique(outputs)) <= {0.0, 1.0}
    names = {layer.name for layer in network.layers}
    _, other, _ = make_tagger("none" if char_encoder != "none" else "cnn", **options)
    other_names = {layer.name for layer in other.layers}
    assert names ^ other_names == {"char_ids", "char_encoder"} | ({"token_features"} if not options["casing"] else set())
    assert {"word_embedding", "bidirectional", "tag_scores" if options["decoder"] == "crf" else "tag_softmax"} <= names
    assert ("casing_embedding" in names) == options["casing"]


@pytest.mark.parametrize("options", MODEL_OPTIONS[:2])
@pytest.mark.parametrize("char_encoder", CHAR_ENCODERS)
def test_padding_does_not_change_a_sentences_output(char_encoder, options):
    encoder, network, _ = make_tagger(char_encoder, **options)
    sentence = ["Peter", "lives", "in", "Berlin"]
    alone = network(encoder(pad_batch([sentence]))).numpy()[0]
    padded = network(encoder(pad_batch([sentence, sentence + ["."] * 20]))).numpy()[0, :4]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


@pytest.mark.parametrize("char_encoder", ["cnn", "lstm"])
def test_saved_tagger_takes_raw_strings_and_needs_no_side_files(tmp_path, char_encoder):
    _, _, tagger = make_tagger(char_encoder, decoder="crf", casing=True)
    sentences = [["Peter", "lives", "in", "Berlin", "."], ["Unseen", "wörds"], ["x"] * 130]
    before = tag(tagger, sentences, batch_size=2)
    tagger.save(tmp_path / "tagger.keras")
    loaded = keras.saving.load_model(tmp_path / "tagger.keras")
    after = tag(loaded, sentences, batch_size=2)
    assert after == before
    assert [len(tags) for tags in after] == [5, 2, 130]  # every token tagged, no truncation
    assert {tag for tags in after for tag in tags} <= set(TAGS)


def test_char_bilstm_gives_keras_bilstm_final_states_and_ignores_padding_characters():
    layer = CharBiLSTM(n_chars=10, char_dim=4, units=3)
    ids = np.array([[[2, 3, 4, 0, 0], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]]])  # two tokens and a padding token
    out = layer(ids).numpy()
    assert out.shape == (1, 3, 6)
    assert (out[0, 2] == 0).all()  # the padding token
    # the first token alone, unpadded, through the layer's own sublayers: the same final states
    alone = layer.bilstm(layer.embedding(np.array([[2, 3, 4]]))).numpy()
    np.testing.assert_allclose(out[0, 0], alone[0], atol=1e-6)
    # more padding characters change nothing
    wider = layer(np.pad(ids, [(0, 0), (0, 0), (0, 4)])).numpy()
    np.testing.assert_allclose(out, wider, atol=1e-6)
    assert layer.compute_mask(ids).numpy().tolist() == [[True, True, False]]


def test_char_bilstm_groups_tokens_by_length_with_the_same_states_as_one_token_at_a_time():
    layer = CharBiLSTM(n_chars=30, char_dim=4, units=3)
    rng = np.random.default_rng(0)
    lengths = [1, 4, 5, 7, 8, 10, 11, 20, 2, 0, 13]  # every group's bounds, an empty row, out of order
    ids = np.zeros((len(lengths), 20), "int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 30, length)
    grouped = layer.encode(ids).numpy()
    for row, length in enumerate(lengths):
        alone = layer.encode(ids[row : row + 1, : max(length, 1)]).numpy()[0]
        np.testing.assert_allclose(grouped[row], alone, atol=1e-6, err_msg=f"length {length}")
    # a batch that leaves groups empty, and one of padding only
    np.testing.assert_allclose(layer.encode(ids[:2]).numpy(), grouped[:2], atol=1e-6)
    assert not layer.encode(np.zeros((3, 20), "int32")).numpy().any()


def test_char_bilstm_gradients_with_empty_length_groups_are_those_of_its_tokens():
    """Short tokens only, as in a batch of a few short sentences: three of the four length groups
    are empty, and their LSTM must add nothing to the gradients (the fused kernel's gradient for an
    empty batch is uninitialised memory: it made tiny trainings' losses NaN)."""
    layer = CharBiLSTM(n_chars=30, char_dim=4, units=3)
    ids = np.array([[5, 6, 7, 0, 0, 0], [8, 0, 0, 0, 0, 0], [9, 10, 0, 0, 0, 0]], "int32")

    @tf.function
    def gradients(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer.encode(ids) * np.arange(6, dtype="float32"))
        return tape.gradient(loss, layer.trainable_weights)

    with tf.GradientTape() as tape:  # the same tokens through the LSTM directly, in one call
        direct = layer.bilstm(layer.embed(ids[:, :3]), mask=ids[:, :3] != 0)
        loss = tf.reduce_sum(direct * np.arange(6, dtype="float32"))
    expected = tape.gradient(loss, layer.trainable_weights)
    for _ in range(5):  # uninitialised memory is not always garbage
        for got, want in zip(gradients(tf.constant(ids)), expected):
            np.testing.assert_allclose(tf.convert_to_tensor(got), tf.convert_to_tensor(want), atol=1e-5)


@pytest.mark.parametrize("layer", [CharCNN(10, 4, 5, 3), CharBiLSTM(10, 4, 3)], ids=["cnn", "lstm"])
def test_char_encoders_encode_each_distinct_token_once_with_the_same_result(layer):
    # "ab" three times, a padding token twice, "c" once: three distinct rows
    ids = np.array([[[2, 3, 0], [2, 3, 0], [0, 0, 0]], [[4, 0, 0], [2, 3, 0], [0, 0, 0]]])
    out = layer(ids).numpy()
    direct = layer.encode(ids.reshape(-1, 3)).numpy().reshape(2, 3, -1)  # every token, repeats included
    direct[:, 2] = 0  # padding tokens get zeros
    np.testing.assert_allclose(out, direct, atol=1e-6)
    calls = []
    original = layer.encode
    layer.encode = lambda rows: calls.append(int(rows.shape[0])) or original(rows)
    layer(ids)
    assert calls == [3]


@pytest.mark.parametrize("char_encoder", CHAR_ENCODERS)
def test_a_tagger_in_training_tags_with_its_present_weights_as_its_keras_graph_does(char_encoder):
    """The dev F1 after each epoch: the NumPy forward pass of the weights as they are then."""
    _, network, keras_tagger = make_tagger(char_encoder, **MODEL_OPTIONS[1])
    layout = layout_of(keras_tagger)
    sentences = [["Peter", "lives", "in", "Berlin", "."], ["the", "Zürich"], ["in"]]
    tagger = Tagger.in_training(keras_tagger, layout)
    assert tagger.forward is not None and tagger.tag_tokens(sentences) == tag(keras_tagger, sentences)
    # new weights, as after an epoch: every token now scores B-PER highest
    network.get_layer("tag_scores").bias.assign(100 * np.eye(len(TAGS))[TAGS.index("B-PER")])
    retagged = Tagger.in_training(keras_tagger, layout).tag_tokens(sentences)
    assert retagged == [["B-PER"] * len(tokens) for tokens in sentences] == tag(keras_tagger, sentences)
    assert layout_of(make_tagger(char_encoder, cell="gru")[2]) is None  # no forward pass: the Keras graph tags


@pytest.mark.slow
@pytest.mark.parametrize("model", ["char_cnn", "char_lstm"])
def test_training_learns_and_is_reproducible(real_train, tmp_path, model):
    sentences = real_train[:150]
    words = build_word_vocab(sentences, PARAMS.vocab.model_copy(update={"min_count": 1}))  # no word vectors
    vocabulary = Vocabulary(words, build_char_vocab(sentences, PARAMS.char_vocab), build_tag_list(sentences), None)
    params = PARAMS.model_copy(update={"train": PARAMS.train.model_copy(update={"epochs": 20, "patience": 20,
                                                                                "learning_rate": 0.01}),
                                       "model": PARAMS.model.model_copy(update={"units": 32, "dropout": 0.1,
                                                                                "word_vectors": "none"})})
    tagger, history = train_tagger(model, params, 7, sentences, sentences, vocabulary)
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert max(row["dev_f1"] for row in history) > 70  # fits its own training sentences
    # the same seed again, 4 epochs (the suite's time): the same first 4 epochs, to the last digit
    shorter = params.model_copy(update={"train": params.train.model_copy(update={"epochs": 4})})
    _, again = train_tagger(model, shorter, 7, sentences, sentences, vocabulary)
    assert [(r["train_loss"], r["dev_f1"]) for r in again] == [(r["train_loss"], r["dev_f1"]) for r in history[:4]]
    # the trained tagger (CRF decoder) saves and loads without training code such as its loss
    tagger.save(tmp_path / "tagger.keras")
    tokens = [s.tokens for s in sentences[:20]]
    assert tag(keras.saving.load_model(tmp_path / "tagger.keras"), tokens) == tag(tagger, tokens)


@pytest.mark.slow
def test_sgd_with_decay_bioes_and_word_dropout_train_and_log_the_learning_rate(real_train):
    sentences = real_train[:150]
    vocabulary = Vocabulary(build_word_vocab(sentences, PARAMS.vocab.model_copy(update={"min_count": 1})),
                            build_char_vocab(sentences, PARAMS.char_vocab), build_tag_list(sentences), None)
    params = PARAMS.model_copy(update={
        "train": PARAMS.train.model_copy(update={"epochs": 12, "patience": 12, "optimizer": "sgd",
                                                 "learning_rate": 0.2, "momentum": 0.9, "lr_decay": 0.1}),
        "model": PARAMS.model.model_copy(update={"units": 32, "dropout": 0.1, "word_vectors": "none",
                                                 "tag_scheme": "bioes", "word_dropout": 0.05})})
    tagger, history = train_tagger("char_cnn", params, 7, sentences, sentences, vocabulary)
    np.testing.assert_allclose([row["learning_rate"] for row in history], [0.2 / (1 + 0.1 * t) for t in range(12)],
                               rtol=1e-6)
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    assert max(row["dev_f1"] for row in history) > 30  # SGD learns slower than Adam here (Adam: > 70 in 20 epochs)
    assert {t for tags in tag(tagger, [s.tokens for s in sentences]) for t in tags} <= set(vocabulary.tags)


def test_a_loss_that_stops_being_finite_stops_the_training_with_the_setting_named(real_train):
    sentences = real_train[:40]
    vocabulary = Vocabulary(build_word_vocab(sentences, PARAMS.vocab.model_copy(update={"min_count": 1})),
                            build_char_vocab(sentences, PARAMS.char_vocab), build_tag_list(sentences), None)
    params = PARAMS.model_copy(update={"train": PARAMS.train.model_copy(update={"epochs": 3, "learning_rate": 3e38}),
                                       "model": PARAMS.model.model_copy(update={"units": 8, "word_vectors": "none"})})
    with pytest.raises(PipelineError, match=r"baseline seed 7: the training loss became (nan|inf) in epoch 1; "
                                            r"lower train.learning_rate or set train.clipnorm"):
        train_tagger("baseline", params, 7, sentences, sentences, vocabulary)


def test_a_loss_that_explodes_stops_the_training_even_with_clipping(real_train):
    """learning_rate 1e4 with the default clipnorm 5: the loss stays finite but explodes (6e5)."""
    sentences = real_train[:40]
    vocabulary = Vocabulary(build_word_vocab(sentences, PARAMS.vocab.model_copy(update={"min_count": 1})),
                            build_char_vocab(sentences, PARAMS.char_vocab), build_tag_list(sentences), None)
    assert PARAMS.train.clipnorm == 5.0
    params = PARAMS.model_copy(update={"train": PARAMS.train.model_copy(update={"epochs": 3, "learning_rate": 1e4}),
                                       "model": PARAMS.model.model_copy(update={"units": 8, "word_vectors": "none"})})
    bound = divergence_bound(sentences, len(vocabulary.tags))
    with pytest.raises(PipelineError, match=rf"^baseline seed 7: the training loss became [0-9.e+]+ in epoch 1, "
                                            rf"beyond {bound:.0f} \(10x a uniform guess\): diverged; lower "
                                            r"train.learning_rate or set train.clipnorm \(now 10000.0 and 5.0\)$"):
        train_tagger("baseline", params, 7, sentences, sentences, vocabulary)


def test_on_a_cpu_the_lstms_run_on_the_fused_kernel():
    spec = TaggerParams.model_validate({**PARAMS.model.model_dump(), "char_encoder": "lstm"})
    network = build_network(100, 50, 9, spec, None)
    fused = [layer.name for layer in network._flatten_layers() if isinstance(layer, FusedBiLSTM)]
    assert sorted(fused) == ["bidirectional", "char_bilstm"]


def pretend_a_gpu(monkeypatch) -> None:
    """tf.config reports a GPU, as where the recurrent layers choose cuDNN."""
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else real(kind))


def test_a_char_lstm_tagger_built_where_a_gpu_is_loads_where_none_is(monkeypatch, tmp_path):
    real = tf.config.list_physical_devices
    pretend_a_gpu(monkeypatch)
    _, network, tagger = make_tagger("lstm")
    assert isinstance(network.get_layer("bidirectional"), keras.layers.Bidirectional)  # cuDNN for the words
    sentences = [["Peter", "lives", "in", "Berlin", "."], ["Unseen", "wörds"]]
    before = tag(tagger, sentences)
    tagger.save(tmp_path / "tagger.keras")
    monkeypatch.setattr(tf.config, "list_physical_devices", real)
    assert tag(keras.saving.load_model(tmp_path / "tagger.keras"), sentences) == before


def test_on_a_gpu_the_recurrent_layers_keep_the_cudnn_conditions(monkeypatch):
    """On a GPU, Keras runs an LSTM/GRU with cuDNN only with its default activations, no recurrent
    dropout, no unrolling and a bias (GRU: reset_after); a change here would silently cost GPU users."""
    pretend_a_gpu(monkeypatch)
    spec = TaggerParams.model_validate({**PARAMS.model.model_dump(), "char_encoder": "lstm"})
    network = build_network(100, 50, 9, spec, None)
    recurrent = [layer for layer in network._flatten_layers() if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU))]
    assert len(recurrent) == 2  # the word BiLSTM's directions; the char BiLSTM stays fused (test above)
    for layer in recurrent:
        config = layer.get_config()
        assert (config["activation"], config["recurrent_activation"]) == ("tanh", "sigmoid")
        assert config["recurrent_dropout"] == 0 and not config["unroll"] and config["use_bias"]
