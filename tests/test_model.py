import keras
import numpy as np
import pytest

from pipeline.model import build_encoder, build_network, build_tagger, pad_batch, tag_sentences
from pipeline.params import load_params
from pipeline.train import train_tagger
from pipeline.vocab import build_tag_list, build_word_vocab
from pipeline.char_vocab import build_char_vocab
from tests.conftest import REPO_ROOT

PARAMS = load_params(REPO_ROOT / "params.yaml")
WORDS = ["the", "Berlin", "in", "lives", "Peter", "."]
CHARS = list(dict.fromkeys("theBrlinvsP."))
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def make_tagger(with_chars: bool, lowercase: bool = False):
    encoder = build_encoder(WORDS, CHARS if with_chars else None, lowercase, max_word_length=8)
    network = build_network(len(WORDS) + 2, len(CHARS) + 2 if with_chars else None, len(TAGS), PARAMS.model)
    return encoder, network, build_tagger(encoder, network, TAGS)


def test_encoder_maps_strings_to_ids_inside_the_graph():
    encoder, _, _ = make_tagger(with_chars=True)
    ids = encoder(pad_batch([["Peter", "lives", "in", "Zürich"], ["the"]]))
    assert ids["word_ids"].numpy().tolist() == [[6, 5, 4, 1], [2, 0, 0, 0]]  # 0 padding, 1 unknown
    chars = ids["char_ids"].numpy()
    assert chars.shape == (2, 4, 8)
    assert chars[0, 3, :6].tolist()[1] == 1 and chars[0, 3, 6:].tolist() == [0, 0]  # ü unknown, then padding
    assert (chars[1, 1:] == 0).all()


def test_lowercase_option_lowercases_unicode_before_lookup():
    encoder = build_encoder(["berlin", "über"], None, lowercase=True, max_word_length=8)
    assert encoder(pad_batch([["BERLIN", "Über", "Paris"]]))["word_ids"].numpy().tolist() == [[2, 3, 1]]


@pytest.mark.parametrize("with_chars", [False, True])
def test_network_shapes_and_the_only_difference_is_the_char_cnn(with_chars):
    encoder, network, _ = make_tagger(with_chars)
    probabilities = network(encoder(pad_batch([["Peter", "lives", "in", "Berlin", "."], ["the"]])))
    assert probabilities.shape == (2, 5, len(TAGS))
    np.testing.assert_allclose(probabilities.numpy().sum(-1), 1.0, rtol=1e-5)
    layers = {layer.name for layer in network.layers}
    assert ("char_cnn" in layers) == with_chars
    assert {"word_embedding", "bidirectional", "tag_softmax"} <= layers


@pytest.mark.parametrize("with_chars", [False, True])
def test_padding_does_not_change_a_sentences_output(with_chars):
    encoder, network, _ = make_tagger(with_chars)
    sentence = ["Peter", "lives", "in", "Berlin"]
    alone = network(encoder(pad_batch([sentence]))).numpy()[0]
    padded = network(encoder(pad_batch([sentence, sentence + ["."] * 20]))).numpy()[0, :4]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_saved_tagger_takes_raw_strings_and_needs_no_side_files(tmp_path):
    _, _, tagger = make_tagger(with_chars=True)
    sentences = [["Peter", "lives", "in", "Berlin", "."], ["Unseen", "wörds"], ["x"] * 130]
    before = tag_sentences(tagger, sentences, batch_size=2)
    tagger.save(tmp_path / "tagger.keras")
    loaded = keras.saving.load_model(tmp_path / "tagger.keras")
    after = tag_sentences(loaded, sentences, batch_size=2)
    assert after == before
    assert [len(tags) for tags in after] == [5, 2, 130]  # every token tagged, no truncation
    assert {tag for tags in after for tag in tags} <= set(TAGS)


def test_training_learns_and_is_reproducible(real_train):
    sentences = real_train[:150]
    words = build_word_vocab(sentences, PARAMS.vocab.model_copy(update={"min_count": 1}))
    chars = build_char_vocab(sentences, PARAMS.char_vocab)
    tags = build_tag_list(sentences)
    params = PARAMS.model_copy(update={"train": PARAMS.train.model_copy(update={"epochs": 20, "patience": 20,
                                                                                "learning_rate": 0.01}),
                                       "model": PARAMS.model.model_copy(update={"units": 32, "dropout": 0.1})})
    _, history = train_tagger("char_cnn", params, 7, sentences, sentences, words, chars, tags)
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert max(row["dev_f1"] for row in history) > 70  # fits its own training sentences
    _, again = train_tagger("char_cnn", params, 7, sentences, sentences, words, chars, tags)
    assert [(r["train_loss"], r["dev_f1"]) for r in again] == [(r["train_loss"], r["dev_f1"]) for r in history]
