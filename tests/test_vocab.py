import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml

from pipeline.data.corpus import parse_conll
from pipeline.data.vocabulary import build_char_vocab, build_tag_list, build_word_vocab, read_vectors
from pipeline.data.word_vectors import embedding_rows, load_pretrained
from pipeline.errors import PipelineError
from pipeline.params import CharVocabParams, VocabParams
from pipeline.stages import char_vocab, vocab
from tests.conftest import REPO_ROOT


def sentences(text):
    return parse_conll(text.splitlines(), "train.txt")


TRAIN = "The O\nEU B-ORG\nsaid O\n\nthe O\neu B-ORG\nin O\nBerlin B-LOC\n\nThe O\nEU B-ORG\n"


def vocab_params(min_count, lowercase, pretrained_words=0):
    return VocabParams(min_count=min_count, lowercase=lowercase, pretrained_words=pretrained_words)


def test_word_vocab_min_count_and_order():
    assert build_word_vocab(sentences(TRAIN), vocab_params(2, lowercase=False)) == ["EU", "The"]
    assert build_word_vocab(sentences(TRAIN), vocab_params(2, lowercase=True)) == ["eu", "the"]
    assert len(build_word_vocab(sentences(TRAIN), vocab_params(1, lowercase=False))) == 7


def test_pretrained_words_keep_rare_train_words_and_add_frequent_ones():
    pretrained = ["the", ",", "berlin", "in", "paris", "zürich"]  # most frequent first
    words = build_word_vocab(sentences(TRAIN), vocab_params(2, True, pretrained_words=3), pretrained)
    # train words by count (berlin and in are seen once but have vectors), then "," (in the first 3, not in train)
    assert words == ["eu", "the", "berlin", "in", ","]


def test_embedding_rows_follow_the_vocabulary_and_mark_missing_rows_nan():
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    rows = embedding_rows(["c", "x", "a"], ["a", "b", "c"], vectors)
    np.testing.assert_array_equal(rows[[0, 2]], [[4, 5], [0, 1]])
    assert np.isnan(rows[1]).all()


def test_tag_list_puts_o_first_and_groups_types():
    assert build_tag_list(sentences(TRAIN + "\nx I-LOC\n")) == ["O", "B-LOC", "I-LOC", "B-ORG"]


def test_char_vocab_counts_characters_of_train_tokens():
    chars = build_char_vocab(sentences(TRAIN), CharVocabParams(min_count=3, max_word_length=10))
    assert chars == ["e", "h", "i"]  # e x5, h x3, i x3 (ties alphabetical); E, T, u... fewer than 3


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with params.yaml and a tiny data/raw, as the download stage leaves it."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["vocab"].update(min_count=1, lowercase=False)
    params["model"].update(word_vectors="none", word_dim=100)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "train.txt").write_text(TRAIN)
    (raw / "dev.txt").write_text("Paris B-LOC\nsaid O\n")
    (raw / "test.txt").write_text("Zürich B-LOC\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_vocab_stage_uses_train_only(project):
    vocab.main([])
    char_vocab.main([])
    words = (project / "data/vocab/words.txt").read_text().split("\n")[:-1]
    assert "Paris" not in words and "Zürich" not in words and "Berlin" in words
    chars = (project / "data/vocab/chars.txt").read_text().split("\n")[:-1]
    assert "P" not in chars and "ü" not in chars
    stats = json.loads((project / "data/vocab/vocab_stats.json").read_text())
    assert stats["oov_rate"] == {"dev": 0.5, "test": 1.0}
    assert stats["words"] == 7 and stats["tags"] == 3
    assert np.load(project / "data/vocab/word_vectors.npy").shape == (7, 0)


def test_vocab_stage_with_glove_adds_frequent_words_and_their_vectors(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["vocab"].update(lowercase=True, pretrained_words=5000)
    params["model"].update(word_vectors="glove-6b-50d", word_dim=50)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    vocab.main([])
    words = (project / "data/vocab/words.txt").read_text().split("\n")[:-1]
    assert words[:3] == ["eu", "the", "berlin"] and "paris" in words and "zürich" not in words
    assert len(words) == len(set(words))
    matrix = read_vectors(project / "data/vocab/word_vectors.npy", len(words), 50)
    glove_words, glove_vectors = load_pretrained("glove-6b-50d")
    np.testing.assert_array_equal(matrix[words.index("paris")], glove_vectors[glove_words.index("paris")])
    stats = json.loads((project / "data/vocab/vocab_stats.json").read_text())
    assert stats["word_vectors"]["token_coverage"] == {"train": 1.0, "dev": 1.0, "test": 0.0}
    assert stats["oov_rate"] == {"dev": 0.0, "test": 1.0}
    with pytest.raises(PipelineError, match=r"word_vectors.npy: shape \(\d+, 50\), expected \(3, 50\)"):
        read_vectors(project / "data/vocab/word_vectors.npy", 3, 50)


def test_vocab_stage_stops_on_a_tag_unseen_in_train_and_writes_nothing(project, capsys):
    (project / "data/raw/test.txt").write_text("Zürich B-LOC\nAG B-ORG\nsays B-MISC\n")
    with pytest.raises(SystemExit):
        vocab.main([])
    assert "data/raw/test.txt:3: tag 'B-MISC' does not occur in train" in capsys.readouterr().err
    assert not (project / "data/vocab").exists()


def test_vocab_stage_on_a_full_disk_changes_no_file_and_says_so(project):
    """A real write failure: the stage runs with a 1 MB file-size limit (RLIMIT_FSIZE; the kernel
    then refuses larger writes, as a full disk would), so words.txt fits and word_vectors.npy does not."""
    vocab.main([])  # a first vocabulary, without vectors
    before = {path.name: path.read_bytes() for path in (project / "data/vocab").iterdir()}
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["vocab"].update(lowercase=True, pretrained_words=100000)  # 20 MB of vectors
    params["model"].update(word_vectors="glove-6b-50d", word_dim=50)
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO_ROOT)}  # CI does not install it
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.vocab"], cwd=project, capture_output=True, text=True,
                            preexec_fn=limit_file_size, env=env, timeout=600)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: data/vocab/word_vectors.npy: file too large for the limits set on this process writing 20.")
    assert {path.name: path.read_bytes() for path in (project / "data/vocab").iterdir()} == before  # no temp files


def test_a_custom_dataset_s_tag_error_names_the_user_s_file_and_line(tmp_path, monkeypatch, capsys):
    """Errors about data found after download name the file and line as params.yaml gives them, not
    the normalized copy in data/raw (whose line numbers differ)."""
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                                      "Peter NNP B-NP B-PER\n")
    (corpus / "dev.txt").write_text("-DOCSTART- -X- O O\n\nPeter NNP B-NP B-PER\n\nthe DT B-NP O\n"
                                    "Olympics NNP I-NP B-EVENT\n")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["data"].update(dataset="custom", files={"train": "corpus/train.txt", "dev": "corpus/dev.txt",
                                                   "test": "corpus/train.txt"})
    params["model"].update(word_vectors="none", word_dim=16)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    from pipeline.stages import download
    download.main([])
    with pytest.raises(SystemExit):
        vocab.main([])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: corpus/dev.txt:6: tag 'B-EVENT' does not occur in train (known: B-ORG, B-PER, O)")
