"""Tagged sentences: reading them from any supported format, and the one normalized form every
stage after `download` (and `predict`) reads.

Input formats are registered in READERS:
- `conll`: whitespace-separated columns, the token first and the NER tag last, blank lines
  between sentences, `-DOCSTART-` lines between documents (CoNLL-2003 and most NER corpora);
- `jsonl`: one JSON object per line with `tokens` and `tags` (or `ner_tags`) string lists, as
  exported from Hugging Face datasets and many annotation tools.

Tags may be IOB1 (CoNLL-2003's original scheme: I- starts an entity unless it follows one of
the same type), IOB2 (every entity starts with B-) or BIOES/BILOU (S-/U- single tokens, E-/L-
ends). Whatever came in is converted to IOB2, the scheme everything downstream uses; the
entities stay the same, so conlleval scores are unchanged.

The normalized form is `token<TAB>tag` per line, a blank line after each sentence.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.errors import PipelineError
from pipeline.files import file_digest, write_text_atomic
from pipeline.layout import MANIFEST_FILE, split_file

DOCSTART = "-DOCSTART-"
BOM = "\ufeff"
TAG_PATTERN = re.compile(r"^(O|[BIESLU]-\S+)$")  # the input schemes' tags
SCHEMES = ("iob1", "iob2", "bioes")


@dataclass(frozen=True)
class Sentence:
    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line of the sentence's first token in the file it was read from, for messages
    token_per_line: bool = True  # False: the whole sentence is on `line` (JSON Lines)

    def line_of(self, token_index: int) -> int:
        return self.line + token_index if self.token_per_line else self.line


def decode_lines(data: bytes, path: str) -> list[str]:
    """UTF-8 lines without their line ends; a byte-order mark (at the start, or as a line's only
    content, as some corpora have) is dropped; bad bytes stop with the file and line."""
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PipelineError(f"{path}:{number}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
        lines.append(line.replace(BOM, "") if BOM in line else line)
    return lines


def check_tag(tag: str, path: str, number: int) -> None:
    if not TAG_PATTERN.match(tag):
        raise PipelineError(f"{path}:{number}: unknown tag {tag!r} (expected O or a B-, I-, E-, S-, L- or U- "
                            "prefix and a type, e.g. B-PER)")


def parse_conll(lines: list[str], path: str) -> list[Sentence]:
    """Sentences of a CoNLL column file; PipelineError naming `path:line` on malformed input."""
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 0
    n_columns = None

    def close_sentence():
        nonlocal tokens, tags
        if tokens:
            sentences.append(Sentence(tokens, tags, start_line))
        tokens, tags = [], []

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            close_sentence()
            continue
        if line[0].isspace():
            raise PipelineError(f"{path}:{number}: empty token (the line starts with whitespace): {line!r}")
        columns = line.split()
        if columns[0] == DOCSTART:
            close_sentence()
            continue
        if len(columns) < 2:
            raise PipelineError(f"{path}:{number}: expected at least 2 columns (token ... tag), found 1: {line!r}")
        if n_columns is None:
            n_columns = len(columns)
        elif len(columns) != n_columns:
            raise PipelineError(
                f"{path}:{number}: expected {n_columns} columns like the lines before, found {len(columns)}: {line!r}")
        check_tag(columns[-1], path, number)
        if not tokens:
            start_line = number
        tokens.append(columns[0])
        tags.append(columns[-1])
    close_sentence()
    return sentences


def parse_jsonl(lines: list[str], path: str) -> list[Sentence]:
    """Sentences of a JSON Lines file: {"tokens": [...], "tags": [...]} ("ner_tags" also accepted)."""
    sentences = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PipelineError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        tags = record.get("tags", record.get("ner_tags")) if isinstance(record, dict) else None
        tokens = record.get("tokens") if isinstance(record, dict) else None
        if not (isinstance(tokens, list) and isinstance(tags, list)
                and all(isinstance(item, str) for item in tokens + tags)):
            raise PipelineError(f"{path}:{number}: expected an object with string lists \"tokens\" and \"tags\"")
        if len(tokens) != len(tags):
            raise PipelineError(f"{path}:{number}: {len(tokens)} tokens but {len(tags)} tags")
        for token in tokens:
            if not token or any(char.isspace() for char in token):
                raise PipelineError(f"{path}:{number}: token {token!r} is empty or holds whitespace")
        for tag in tags:
            check_tag(tag, path, number)
        if tokens:
            sentences.append(Sentence(tokens, tags, number, token_per_line=False))
    return sentences


READERS: dict[str, Callable[[list[str], str], list[Sentence]]] = {"conll": parse_conll, "jsonl": parse_jsonl}


def detect_scheme(sentences: list[Sentence]) -> str:
    """"bioes" if any tag has an S-/E-/U-/L- prefix, "iob1" if an I- tag starts an entity, else "iob2"."""
    iob1 = False
    for sentence in sentences:
        previous = "O"
        for tag in sentence.tags:
            if tag[0] in "SEUL":
                return "bioes"
            if tag[0] == "I" and previous[2:] != tag[2:]:
                iob1 = True
            previous = tag
    return "iob1" if iob1 else "iob2"


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1, IOB2 or BIOES/BILOU tags -> IOB2 with the same entities (conlleval's chunking)."""
    converted, previous = [], "O"
    for tag in tags:
        if tag != "O":
            prefix = {"S": "B", "U": "B", "E": "I", "L": "I"}.get(tag[0], tag[0])
            if prefix == "I" and previous[2:] != tag[2:]:  # IOB1: an I- that starts an entity
                prefix = "B"
            tag = f"{prefix}-{tag[2:]}"
        converted.append(tag)
        previous = tag
    return converted


def to_bioes(tags: list[str]) -> list[str]:
    """IOB2 tags -> BIOES with the same entities: S- a single-token entity, E- an entity's last token."""
    following = [*tags[1:], "O"]
    converted = []
    for tag, after in zip(tags, following):
        continues = after == f"I-{tag[2:]}"
        if tag.startswith("B-") and not continues:
            tag = f"S-{tag[2:]}"
        elif tag.startswith("I-") and not continues:
            tag = f"E-{tag[2:]}"
        converted.append(tag)
    return converted


def in_scheme(sentences: list[Sentence], scheme: str) -> list[Sentence]:
    """IOB2 sentences with their tags in `scheme` (iob2: unchanged; bioes)."""
    if scheme == "iob2":
        return sentences
    return [Sentence(s.tokens, to_bioes(s.tags), s.line, s.token_per_line) for s in sentences]


def read_tagged(path: str | os.PathLike, input_format: str = "conll", name: str | None = None) -> list[Sentence]:
    """Every sentence of a file in `input_format`, its tags as the file has them; messages call
    the file `name` if given. An empty file is an error."""
    name = name or str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except OSError as error:
        raise PipelineError(f"{path}: cannot read ({error.strerror})") from None
    sentences = READERS[input_format](decode_lines(data, name), name)
    if not sentences:
        raise PipelineError(f"{name}: no sentences found (empty split)")
    return sentences


def as_iob2(sentences: list[Sentence]) -> list[Sentence]:
    return [Sentence(s.tokens, to_iob2(s.tags), s.line, s.token_per_line) for s in sentences]


def read_corpus(path: str | os.PathLike, input_format: str = "conll", name: str | None = None) -> list[Sentence]:
    """Every sentence of a file in `input_format`, tags converted to IOB2."""
    return as_iob2(read_tagged(path, input_format, name))


def write_normalized(path: str | os.PathLike, sentences: list[Sentence]) -> None:
    write_text_atomic(path, "".join("".join(f"{token}\t{tag}\n" for token, tag in zip(s.tokens, s.tags)) + "\n"
                                    for s in sentences))


def read_split(split: str) -> list[Sentence]:
    """A split as the download stage wrote it (normalized, data.limit applied), each sentence's
    line that of the file it came from (split_source), so messages point into the user's file."""
    sentences = read_corpus(split_file(split))
    origin = split_origin(split)
    if origin is None:
        return sentences
    per_line = origin["format"] == "conll"
    return [Sentence(s.tokens, s.tags, line, per_line) for s, line in zip(sentences, origin["lines"], strict=True)]


def split_source(split: str) -> str:
    """The file or URL a split came from, as params.yaml names it: what messages about its lines name."""
    origin = split_origin(split)
    return origin["file"] if origin else str(split_file(split))


def split_origin(split: str) -> dict | None:
    """{"file", "format", "lines"} of a split as data/raw/manifest.json records it; None if it does
    not (written before origins were kept) or if the split's file is not the one download wrote."""
    try:
        origin = json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))[split]["origin"]
        return origin if origin["normalized_sha256"] == file_digest(split_file(split)) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def available_splits(splits: tuple[str, ...]) -> list[str]:
    """The splits the download stage wrote (a custom dataset may have no test_pp)."""
    return [split for split in splits if split_file(split).exists()]


def check_known_tags(sentences: list[Sentence], known: set[str], path: str) -> None:
    """Stop at the first tag the model was not trained on, naming the file and line."""
    for sentence in sentences:
        for offset, tag in enumerate(sentence.tags):
            if tag not in known:
                raise PipelineError(f"{path}:{sentence.line_of(offset)}: tag {tag!r} does not occur in train "
                                    f"(known: {', '.join(sorted(known))})")
