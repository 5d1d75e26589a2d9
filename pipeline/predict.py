"""Tag your own text with a trained tagger.

    echo "Peter lives in Berlin." | python -m pipeline.predict --model models/char_cnn
    python -m pipeline.predict --model runs:/<run id>/tagger --input news.txt --format json
    python -m pipeline.predict --model models/char_cnn --input data/raw/test.txt   # + conlleval scores

Raw text: one sentence or paragraph per line, tokenized like CoNLL-2003. A CoNLL file (token
first, tag last, blank lines between sentences; detected, or forced with --input-format conll)
keeps its own tokenization, and with gold tags the conlleval scores go to stderr. Output:
`token<TAB>tag` lines with a blank line after each sentence, or --format json: one JSON object
per line (text, tokens, tags, entities with token and character offsets).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.conll import TAG_PATTERN, DOCSTART, check_known_tags, parse_conll
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.metrics import score
from pipeline.tagger import TaggedSentence, Tagger, entities_of, spans_of_joined


def read_lines(raw: bytes, name: str) -> list[str]:
    lines = raw.splitlines()
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise PipelineError(f"{name}:{number}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    if not any(line.strip() for line in decoded):
        raise PipelineError(f"{name}: empty input (nothing to tag)")
    return decoded


def looks_like_conll(lines: list[str]) -> bool:
    """Every non-blank line is `token ... tag` (or -DOCSTART-)."""
    rows = [line.split() for line in lines if line.strip()]
    return rows[0][0] == DOCSTART or all(len(r) >= 2 and TAG_PATTERN.match(r[-1]) for r in rows)


def conll_sentences(lines: list[str], name: str) -> tuple[list[list[str]], list[list[str]] | None, list]:
    """Tokens (and gold tags, when the lines have a tag column) of a CoNLL file."""
    rows = [line.split() for line in lines if line.strip() and not line.startswith(DOCSTART)]
    if rows and len(rows[0]) == 1:  # tokens only, no gold tags
        sentences, current = [], []
        for line in lines + [""]:
            if line.strip() and not line.startswith(DOCSTART):
                current.append(line.split()[0])
            elif current:
                sentences.append(current)
                current = []
        return sentences, None, []
    parsed = parse_conll([line.encode("utf-8") for line in lines], name)
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


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (models/char_cnn) or MLflow model URI")
    parser.add_argument("--input", help="input file (default: stdin)")
    parser.add_argument("--input-format", choices=("auto", "text", "conll"), default="auto")
    parser.add_argument("--format", choices=("conll", "json"), default="conll", help="output format")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    if args.input:
        name = args.input
        try:
            raw = Path(args.input).read_bytes()
        except OSError as error:
            raise PipelineError(f"{args.input}: cannot read ({error.strerror})") from None
    else:
        name, raw = "<stdin>", sys.stdin.buffer.read()
    lines = read_lines(raw, name)
    tagger = Tagger.load(args.model)

    if args.input_format == "conll" or (args.input_format == "auto" and looks_like_conll(lines)):
        sentences, gold, parsed = conll_sentences(lines, name)
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
