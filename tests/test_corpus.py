import json

import pytest

from pipeline.data.corpus import (
    check_known_tags,
    decode_lines,
    detect_scheme,
    parse_conll,
    parse_jsonl,
    read_corpus,
    read_split,
    to_iob2,
    write_normalized,
)
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import score
from pipeline.files import write_bytes_atomic


def parse(text: str | bytes):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_conll(decode_lines(data, "f.txt"), "f.txt")


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


@pytest.mark.parametrize("text", ["", "-DOCSTART- -X- -X- O\n\n", "\ufeff\n\n"])
def test_a_file_without_sentences_is_an_error(tmp_path, text):
    path = tmp_path / "f.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError, match="f.txt: no sentences found"):
        read_corpus(path)


def test_byte_order_marks_are_not_tokens():
    # a BOM at the start of the file, and a line holding only a BOM (as some corpora have) between sentences
    sentences = parse("\ufeff-DOCSTART- O\n\nEU B-ORG\n\ufeff\nPeter B-PER\n")
    assert [s.tokens for s in sentences] == [["EU"], ["Peter"]]


def test_missing_file(tmp_path):
    with pytest.raises(PipelineError, match="missing.txt: file not found"):
        read_corpus(tmp_path / "missing.txt")


def test_unknown_tag_names_line():
    sentences = parse("a O\n\nb O\nc B-FOO\n")
    with pytest.raises(PipelineError, match=r"dev.txt:4: tag 'B-FOO' does not occur in train"):
        check_known_tags(sentences, {"O", "B-PER"}, "dev.txt")


# the same four entities in every scheme: [Peter Blackburn]PER [EU]ORG [German]MISC [British]MISC
IOB2 = ["B-PER", "I-PER", "O", "B-ORG", "B-MISC", "B-MISC", "O"]
SCHEMES = {
    "iob2": IOB2,
    "iob1": ["I-PER", "I-PER", "O", "I-ORG", "I-MISC", "B-MISC", "O"],  # B- only between same-type neighbours
    "bioes": ["B-PER", "E-PER", "O", "S-ORG", "S-MISC", "S-MISC", "O"],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_converts_to_the_same_iob2_tags_and_entities(scheme):
    tags = SCHEMES[scheme]
    assert detect_scheme(parse("".join(f"t{i} {tag}\n" for i, tag in enumerate(tags)))) == scheme
    assert to_iob2(tags) == IOB2
    assert score([IOB2], [to_iob2(tags)])["f1"] == 100.0


def test_bilou_is_read_as_bioes():
    assert to_iob2(["U-LOC", "B-PER", "I-PER", "L-PER"]) == ["B-LOC", "B-PER", "I-PER", "I-PER"]


def test_conversion_of_real_train_is_the_identity(real_train):
    # CoNLL-2003 as distributed here is IOB2 already: converting changes no tag
    assert detect_scheme(real_train) == "iob2"
    assert all(to_iob2(s.tags) == s.tags for s in real_train)


def test_iob1_and_bioes_files_read_as_iob2(tmp_path):
    for scheme, tags in SCHEMES.items():
        path = tmp_path / f"{scheme}.txt"
        path.write_text("".join(f"t{i} NN {tag}\n" for i, tag in enumerate(tags)))
        assert read_corpus(path)[0].tags == IOB2


def test_jsonl_reader_and_its_errors(tmp_path):
    lines = [json.dumps({"tokens": ["EU", "rejects"], "tags": ["S-ORG", "O"]}),
             "", json.dumps({"tokens": ["Peter"], "ner_tags": ["B-PER"]})]
    sentences = parse_jsonl(lines, "f.jsonl")
    assert [(s.tokens, s.tags, s.line) for s in sentences] == [(["EU", "rejects"], ["S-ORG", "O"], 1),
                                                               (["Peter"], ["B-PER"], 3)]
    for line, message in [("{", "f.jsonl:1: not valid JSON"),
                          ('{"tokens": ["a"]}', 'f.jsonl:1: expected an object with string lists'),
                          ('{"tokens": ["a", "b"], "tags": ["O"]}', "f.jsonl:1: 2 tokens but 1 tags"),
                          ('{"tokens": ["New York"], "tags": ["B-LOC"]}', "f.jsonl:1: token 'New York' is empty"),
                          ('{"tokens": ["a"], "tags": ["X-LOC"]}', "f.jsonl:1: unknown tag 'X-LOC'")]:
        with pytest.raises(PipelineError, match=message):
            parse_jsonl([line], "f.jsonl")
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines))
    assert read_corpus(path, "jsonl")[0].tags == ["B-ORG", "O"]
    with pytest.raises(PipelineError, match=r"dev.jsonl:1: tag 'B-ORG'"):  # the whole sentence is on one line
        check_known_tags(read_corpus(path, "jsonl"), {"O"}, "dev.jsonl")


def test_normalized_form_round_trips(tmp_path, monkeypatch, real_dev):
    monkeypatch.chdir(tmp_path)
    write_normalized("data/raw/dev.txt", real_dev)
    again = read_split("dev")
    assert [(s.tokens, s.tags) for s in again] == [(s.tokens, s.tags) for s in real_dev]
    assert (tmp_path / "data/raw/dev.txt").read_text().startswith("CRICKET\tO\n-\tO\n")


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")

    with pytest.raises(TypeError):
        write_bytes_atomic(path, 42)  # not bytes: fails mid-write, after the temporary file exists
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_bioes_conversion_keeps_every_entity_of_the_real_training_data(real_train):
    from pipeline.data.corpus import to_bioes
    assert to_bioes(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC", "B-ORG"]) == \
        ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "I-LOC", "E-LOC", "S-ORG"]
    for sentence in real_train:
        assert to_iob2(to_bioes(sentence.tags)) == sentence.tags
