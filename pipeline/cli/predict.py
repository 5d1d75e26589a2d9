"""Tag your own text with a trained tagger.

    echo "Peter lives in Berlin." | python -m pipeline.cli.predict --model models/char_cnn
    python -m pipeline.cli.predict --model runs:/<run id>/tagger --input news.txt --format json
    python -m pipeline.cli.predict --model models/char_cnn --input data/raw/test.txt   # + conlleval scores

Raw text: one sentence or paragraph per line, tokenized like CoNLL-2003. A CoNLL file (token
first, tag last, blank lines between sentences) or a JSON Lines file ({"tokens": [...], "tags":
[...]}), detected from the whole input or named with --input-format, keeps its own tokenization;
its gold tags (IOB1, IOB2 or BIOES, read as pipeline/data/corpus.py reads the training data) are
scored as conlleval does, on stderr. Output:
`token<TAB>tag` lines with a blank line after each sentence, or --format json: one JSON object
per line (text, tokens, tags, entities with token and character offsets).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.data.corpus import DOCSTART, READERS, TAG_PATTERN, as_iob2, check_known_tags, decode_lines
from pipeline.stages.arguments import positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (models/char_cnn) or MLflow model URI")
    parser.add_argument("--input", help="input file (default: stdin)")
    parser.add_argument("--input-format", choices=("auto", "text", *READERS), default="auto",
                        help="auto: detected from the whole input")
    parser.add_argument("--format", choices=("conll", "json"), default="conll", help="output format")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    return parser


if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    build_parser().parse_args()

from pipeline.errors import PipelineError, exits_cleanly
from pipeline.evaluation.metrics import score
from pipeline.model.tagger import TaggedSentence, Tagger, entities_of, spans_of_joined


def read_lines(raw: bytes, name: str) -> list[str]:
    lines = decode_lines(raw, name)
    if not any(line.strip() for line in lines):
        raise PipelineError(f"{name}: empty input (nothing to tag)")
    return lines


def detect_format(lines: list[str]) -> str:
    """Decided by the whole input's structure, not its first line: jsonl if every non-blank line is
    a JSON object; conll if every token line has the same number (2 or more) of columns and most
    end in a tag (so a mistyped tag is reported, not tagged as text); else raw text."""
    rows = [line.strip() for line in lines if line.strip()]
    if all(row.startswith("{") and row.endswith("}") for row in rows):
        return "jsonl"
    columns = [row.split() for row in rows if not row.startswith(DOCSTART)]
    if not columns:
        return "conll"
    widths = {len(c) for c in columns}
    tagged = sum(bool(TAG_PATTERN.match(c[-1])) for c in columns)
    return "conll" if len(widths) == 1 and min(widths) >= 2 and 2 * tagged >= len(columns) else "text"


def token_only_sentences(lines: list[str]) -> list[list[str]]:
    """A one-column CoNLL file: tokens, blank lines between sentences, no gold tags."""
    sentences, current = [], []
    for line in lines + [""]:
        if line.strip() and not line.startswith(DOCSTART):
            current.append(line.split()[0])
        elif current:
            sentences.append(current)
            current = []
    return sentences


def gold_sentences(lines: list[str], input_format: str, name: str):
    """(tokens, gold tags or None, parsed sentences) of a CoNLL or JSON Lines input."""
    if input_format == "conll" and all(len(line.split()) == 1 for line in lines
                                       if line.strip() and not line.startswith(DOCSTART)):
        return token_only_sentences(lines), None, []
    parsed = as_iob2(READERS[input_format](lines, name))
    if not parsed:
        raise PipelineError(f"{name}: no sentences found")
    return [s.tokens for s in parsed], [s.tags for s in parsed], parsed


def tag_text(tagger: Tagger, lines: list[str], batch_size: int) -> list[TaggedSentence]:
    results = tagger.tag(lines, batch_size)
    skipped = [str(number) for number, result in enumerate(results, start=1) if result.skipped]
    if skipped:
        print(f"skipped {len(skipped)} empty or whitespace-only line(s): {', '.join(skipped)}", file=sys.stderr)
    return [result for result in results if not result.skipped]


def conlleval_report(gold: list[list[str]], predicted: list[list[str]]) -> str:
    result = score(gold, predicted)
    n_tokens = sum(len(tags) for tags in gold)
    lines = [f"processed {n_tokens} tokens; accuracy: {result['accuracy']:6.2f}%; "
             f"precision: {result['precision']:6.2f}%; recall: {result['recall']:6.2f}%; FB1: {result['f1']:6.2f}"]
    for entity_type, s in result["per_type"].items():
        lines.append(f"{entity_type:>17}: precision: {s['precision']:6.2f}%; recall: {s['recall']:6.2f}%; "
                     f"FB1: {s['f1']:6.2f}  {s['support']}")
    return "\n".join(lines)


def write(results: list[TaggedSentence], output_format: str, out) -> None:
    for result in results:
        if output_format == "json":
            out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        else:
            out.write("".join(f"{token}\t{tag}\n" for token, tag in zip(result.tokens, result.tags)) + "\n")


def model_folder(location: str) -> Path:
    """A model folder as given, or the local copy of an MLflow model URI (runs:/..., models:/...):
    the tagger itself only reads folders."""
    if not Path(location).exists() and ":" in location:
        from pipeline.tracking.models import download_model  # MLflow only when a URI asks for it
        return download_model(location)
    return Path(location)


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    if args.input:
        name = args.input
        try:
            raw = Path(args.input).read_bytes()
        except OSError as error:
            raise PipelineError(f"{args.input}: cannot read ({error.strerror})") from None
    else:
        name, raw = "<stdin>", sys.stdin.buffer.read()
    lines = read_lines(raw, name)
    tagger = Tagger.load(model_folder(args.model))

    input_format = detect_format(lines) if args.input_format == "auto" else args.input_format
    if input_format != "text":
        sentences, gold, parsed = gold_sentences(lines, input_format, name)
        if gold is not None:
            check_known_tags(parsed, set(tagger.tags), name)  # a model trained on another tag set
        predicted = tagger.tag_tokens(sentences, args.batch_size)
        results = []
        for tokens, tags in zip(sentences, predicted):
            text, spans = spans_of_joined(tokens)
            results.append(TaggedSentence(text, tokens, tags, entities_of(text, tokens, spans, tags)))
        write(results, args.format, sys.stdout)
        if gold is not None:
            print(conlleval_report(gold, predicted), file=sys.stderr)
    else:
        write(tag_text(tagger, lines, args.batch_size), args.format, sys.stdout)


if __name__ == "__main__":
    main()
