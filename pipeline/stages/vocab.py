"""Stage `vocab`: word vocabulary and tag list from train only, and the vocabulary's pretrained
vectors (model.word_vectors) -> data/vocab/."""
from __future__ import annotations

from pipeline.stages.arguments import parse_stage_args

if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    parse_stage_args("vocab")

import json

import numpy as np

from pipeline.data.corpus import Sentence, available_splits, check_known_tags, read_split, split_source
from pipeline.data.lexicon import normalize
from pipeline.data.vocabulary import build_tag_list, build_word_vocab, write_list, write_vectors
from pipeline.data.word_vectors import embedding_rows, load_pretrained
from pipeline.errors import exits_cleanly
from pipeline.files import all_or_none, write_json_atomic
from pipeline.layout import TAGS_FILE, VECTORS_FILE, VOCAB_STATS_FILE, WORDS_FILE
from pipeline.params import SPLITS, load_params


def oov_rate(sentences: list[Sentence], vocab: set[str], lowercase: bool) -> float:
    tokens = [normalize(token, lowercase) for s in sentences for token in s.tokens]
    return sum(token not in vocab for token in tokens) / len(tokens)


def coverage(sentences: list[Sentence], with_vector: set[str], lowercase: bool) -> float:
    """Share of the tokens that get a pretrained vector."""
    return 1 - oov_rate(sentences, with_vector, lowercase)


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("vocab", argv)
    params = load_params()
    train = read_split("train")
    vectors_name = params.model.word_vectors
    pretrained_words, pretrained_vectors = load_pretrained(vectors_name) if vectors_name != "none" else (None, None)
    words = build_word_vocab(train, params.vocab, pretrained_words)
    tags = build_tag_list(train)
    if pretrained_words:
        matrix = embedding_rows(words, pretrained_words, pretrained_vectors)
        with_vector = {word for word, row in zip(words, matrix) if np.isfinite(row).all()}
    else:
        matrix, with_vector = np.zeros((len(words), 0), np.float32), set()
    stats = {"words": len(words), "tags": len(tags), "train_sentences": len(train),
             "train_tokens": sum(len(s.tokens) for s in train), "oov_rate": {}}
    vocab = set(words)
    train_words = {token.lower() for s in train for token in s.tokens}
    if pretrained_words:
        stats["word_vectors"] = {"name": vectors_name, "words_with_vector": len(with_vector),
                                 "words_not_in_train": len(vocab - train_words),
                                 "token_coverage": {"train": round(coverage(train, with_vector, True), 6)}}
    for split in available_splits(SPLITS[1:]):
        sentences = read_split(split)
        check_known_tags(sentences, set(tags), split_source(split))
        stats["oov_rate"][split] = round(oov_rate(sentences, vocab, params.vocab.lowercase), 6)
        if pretrained_words:
            stats["word_vectors"]["token_coverage"][split] = round(coverage(sentences, with_vector, True), 6)
    with all_or_none():  # the vocabulary's files match each other, or the stage changed none of them
        write_list(WORDS_FILE, words)
        write_list(TAGS_FILE, tags)
        write_vectors(VECTORS_FILE, matrix)
        write_json_atomic(VOCAB_STATS_FILE, stats)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
