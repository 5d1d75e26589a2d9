import json

import pytest
import yaml

from pipeline import char_vocab, vocab
from pipeline.conll import parse_conll
from pipeline.params import CharVocabParams, VocabParams
from tests.conftest import REPO_ROOT


def sentences(text):
    return parse_conll(text.encode().splitlines(keepends=True), "train.txt")


TRAIN = "The O\nEU B-ORG\nsaid O\n\nthe O\neu B-ORG\nin O\nBerlin B-LOC\n\nThe O\nEU B-ORG\n"


def test_word_vocab_min_count_and_order():
    assert vocab.build_word_vocab(sentences(TRAIN), VocabParams(min_count=2, lowercase=False)) == ["EU", "The"]
    assert vocab.build_word_vocab(sentences(TRAIN), VocabParams(min_count=2, lowercase=True)) == ["eu", "the"]
    assert len(vocab.build_word_vocab(sentences(TRAIN), VocabParams(min_count=1, lowercase=False))) == 7


def test_tag_list_puts_o_first_and_groups_types():
    assert vocab.build_tag_list(sentences(TRAIN + "\nx I-LOC\n")) == ["O", "B-LOC", "I-LOC", "B-ORG"]


def test_char_vocab_counts_characters_of_train_tokens():
    chars = char_vocab.build_char_vocab(sentences(TRAIN), CharVocabParams(min_count=3, max_word_length=10))
    assert chars == ["e", "h", "i"]  # e x5, h x3, i x3 (ties alphabetical); E, T, u... fewer than 3


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with params.yaml and a tiny data/raw, as the download stage leaves it."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["vocab"]["min_count"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "train.txt").write_text(TRAIN)
    (raw / "dev.txt").write_text("Paris B-LOC\nsaid O\n")
    (raw / "test.txt").write_text("Zürich B-LOC\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_vocab_stage_uses_train_only(project):
    vocab.main()
    char_vocab.main()
    words = (project / "data/vocab/words.txt").read_text().split("\n")[:-1]
    assert "Paris" not in words and "Zürich" not in words and "Berlin" in words
    chars = (project / "data/vocab/chars.txt").read_text().split("\n")[:-1]
    assert "P" not in chars and "ü" not in chars
    stats = json.loads((project / "data/vocab/vocab_stats.json").read_text())
    assert stats["oov_rate"] == {"dev": 0.5, "test": 1.0}
    assert stats["words"] == 7 and stats["tags"] == 3


def test_vocab_stage_stops_on_a_tag_unseen_in_train_and_writes_nothing(project, capsys):
    (project / "data/raw/test.txt").write_text("Zürich B-LOC\nAG B-ORG\nsays B-MISC\n")
    with pytest.raises(SystemExit):
        vocab.main()
    assert "data/raw/test.txt:3: tag 'B-MISC' does not occur in train" in capsys.readouterr().err
    assert not (project / "data/vocab").exists()
