import keras
import numpy as np
import pytest

from pipeline.model import CASINGS, build_encoder, build_network, build_tagger, pad_batch, tag_sentences
from pipeline.params import load_params
from pipeline.train import train_tagger
from pipeline.vocab import build_tag_list, build_word_vocab
from pipeline.char_vocab import build_char_vocab
from tests.conftest import REPO_ROOT

PARAMS = load_params(REPO_ROOT / "params.yaml")
MODEL_OPTIONS = [dict(decoder="softmax", casing=False), dict(decoder="crf", casing=True),
                 dict(decoder="softmax", casing=True), dict(decoder="crf", casing=False)]
WORDS = ["the", "Berlin", "in", "lives", "Peter", "."]
CHARS = list(dict.fromkeys("theBrlinvsP."))
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def make_tagger(with_chars: bool, lowercase: bool = False, word_vectors=None, **model_options):
    params = PARAMS.model.model_copy(update={"word_vectors": "none", "word_dim": 16, **model_options})
    encoder = build_encoder(WORDS, CHARS if with_chars else None, lowercase, 8, params.casing)
    network = build_network(len(WORDS) + 2, len(CHARS) + 2 if with_chars else None, len(TAGS), params, word_vectors)
    return encoder, network, build_tagger(encoder, network, TAGS)


def test_encoder_maps_strings_to_ids_inside_the_graph():
    encoder, _, _ = make_tagger(with_chars=True)
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
    _, network, _ = make_tagger(with_chars=False, word_vectors=vectors)
    table = network.get_layer("word_embedding").embeddings.numpy()
    np.testing.assert_array_equal(table[2], 0.5)
    assert np.abs(table[3:]).max() < 0.06 and np.abs(table[3:]).min() > 0  # Keras' uniform(-0.05, 0.05)


@pytest.mark.parametrize("options", MODEL_OPTIONS)
@pytest.mark.parametrize("with_chars", [False, True])
def test_network_shapes_and_the_only_difference_is_the_char_cnn(with_chars, options):
    encoder, network, _ = make_tagger(with_chars, **options)
    outputs = network(encoder(pad_batch([["Peter", "lives", "in", "Berlin", "."], ["the"]]))).numpy()
    assert outputs.shape == (2, 5, len(TAGS))
    np.testing.assert_allclose(outputs.sum(-1), 1.0, rtol=1e-5)  # probabilities, or the CRF's Viterbi one-hots
    if options["decoder"] == "crf":
        assert set(np.unique(outputs)) <= {0.0, 1.0}
    names = {layer.name for layer in network.layers}
    _, other, _ = make_tagger(not with_chars, **options)
    other_names = {layer.name for layer in other.layers}
    assert names ^ other_names <= {"char_ids", "char_cnn", "token_features"}
    assert {"word_embedding", "bidirectional", "tag_scores" if options["decoder"] == "crf" else "tag_softmax"} <= names
    assert ("casing_embedding" in names) == options["casing"]


@pytest.mark.parametrize("options", MODEL_OPTIONS[:2])
@pytest.mark.parametrize("with_chars", [False, True])
def test_padding_does_not_change_a_sentences_output(with_chars, options):
    encoder, network, _ = make_tagger(with_chars, **options)
    sentence = ["Peter", "lives", "in", "Berlin"]
    alone = network(encoder(pad_batch([sentence]))).numpy()[0]
    padded = network(encoder(pad_batch([sentence, sentence + ["."] * 20]))).numpy()[0, :4]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_saved_tagger_takes_raw_strings_and_needs_no_side_files(tmp_path):
    _, _, tagger = make_tagger(with_chars=True, decoder="crf", casing=True)
    sentences = [["Peter", "lives", "in", "Berlin", "."], ["Unseen", "wörds"], ["x"] * 130]
    before = tag_sentences(tagger, sentences, batch_size=2)
    tagger.save(tmp_path / "tagger.keras")
    loaded = keras.saving.load_model(tmp_path / "tagger.keras")
    after = tag_sentences(loaded, sentences, batch_size=2)
    assert after == before
    assert [len(tags) for tags in after] == [5, 2, 130]  # every token tagged, no truncation
    assert {tag for tags in after for tag in tags} <= set(TAGS)


def test_training_learns_and_is_reproducible(real_train, tmp_path):
    sentences = real_train[:150]
    words = build_word_vocab(sentences, PARAMS.vocab.model_copy(update={"min_count": 1}))  # no word vectors
    chars = build_char_vocab(sentences, PARAMS.char_vocab)
    tags = build_tag_list(sentences)
    params = PARAMS.model_copy(update={"train": PARAMS.train.model_copy(update={"epochs": 20, "patience": 20,
                                                                                "learning_rate": 0.01}),
                                       "model": PARAMS.model.model_copy(update={"units": 32, "dropout": 0.1,
                                                                                "word_vectors": "none"})})
    tagger, history = train_tagger("char_cnn", params, 7, sentences, sentences, words, chars, tags)
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert max(row["dev_f1"] for row in history) > 70  # fits its own training sentences
    _, again = train_tagger("char_cnn", params, 7, sentences, sentences, words, chars, tags)
    assert [(r["train_loss"], r["dev_f1"]) for r in again] == [(r["train_loss"], r["dev_f1"]) for r in history]
    # the trained tagger (CRF decoder) saves and loads without training code such as its loss
    tagger.save(tmp_path / "tagger.keras")
    tokens = [s.tokens for s in sentences[:20]]
    assert tag_sentences(keras.saving.load_model(tmp_path / "tagger.keras"), tokens) == tag_sentences(tagger, tokens)
