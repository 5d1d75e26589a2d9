import pytest

from pipeline.conll import check_known_tags, parse_conll, read_conll, write_bytes_atomic
from pipeline.errors import PipelineError


def parse(text: str | bytes):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_conll(data.splitlines(keepends=True), "f.txt")


def test_reads_sentences_skipping_docstart_and_blank_lines():
    sentences = parse("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
                      "Peter NNP B-NP B-PER\r\nBlackburn NNP I-NP I-PER\r\n")
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert [s.line for s in sentences] == [3, 7]


def test_any_column_count_first_is_token_last_is_tag():
    assert parse("Berlin\tB-LOC\nis O\n")[0].tags == ["B-LOC", "O"]


def test_real_conll_sizes_match_the_published_counts(real_train, real_dev):
    assert (len(real_train), sum(len(s.tokens) for s in real_train)) == (14041, 203621)
    assert (len(real_dev), sum(len(s.tokens) for s in real_dev)) == (3250, 51362)


@pytest.mark.parametrize("text, message", [
    ("EU NNP B-NP B-ORG\nrejects VBZ O\n", "f.txt:2: expected 4 columns"),
    ("EU\n", "f.txt:1: expected at least 2 columns"),
    ("EU NNP B-NP B-ORG\n NNP B-NP O\n", "f.txt:2: empty token"),
    ("EU NNP B-NP X-ORG\n", "f.txt:1: unknown tag 'X-ORG'"),
    ("EU NNP B-NP B-\n", "f.txt:1: unknown tag 'B-'"),
    ("", "f.txt: no sentences found"),
    ("-DOCSTART- -X- -X- O\n\n", "f.txt: no sentences found"),
])
def test_malformed_input_names_file_and_line(text, message):
    with pytest.raises(PipelineError, match=message):
        parse(text)


def test_non_utf8_bytes_name_the_line():
    with pytest.raises(PipelineError, match=r"f.txt:2: not valid UTF-8"):
        parse(b"EU B-ORG\nM\xfcnchen B-LOC\n")


def test_missing_file(tmp_path):
    with pytest.raises(PipelineError, match="missing.txt: file not found"):
        read_conll(tmp_path / "missing.txt")


def test_limit_keeps_first_sentences(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("a O\n\nb O\n\nc O\n")
    assert [s.tokens for s in read_conll(path, limit=2)] == [["a"], ["b"]]


def test_unknown_tag_names_line():
    sentences = parse("a O\n\nb O\nc B-FOO\n")
    with pytest.raises(PipelineError, match=r"dev.txt:4: tag 'B-FOO' does not occur in train"):
        check_known_tags(sentences, {"O", "B-PER"}, "dev.txt")


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")

    with pytest.raises(TypeError):
        write_bytes_atomic(path, 42)  # not bytes: fails mid-write, after the temporary file exists
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]
