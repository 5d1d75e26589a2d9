"""Which words a run knows: the form a token is looked up in, and the word categories of Ma & Hovy
(2016, section 4.6) that the gain breakdown groups entities by.

A word (in its lookup form) is
- IV   (in vocabulary): seen in the training data and has a pretrained vector;
- OOTV (out of training vocabulary): not seen in training, has a pretrained vector;
- OOEV (out of embedding vocabulary): seen in training, no pretrained vector;
- OOBV (out of both): neither.
An entity is OOBV if at least one of its words is not in training and at least one (the same or
another) has no vector; OOTV if some word is not in training and every word has a vector; OOEV if
every word is in training and some word has no vector; IV if every word is both.

"Has a pretrained vector" means a row of this run's own embedding table that came from
`model.word_vectors` (data/vocab/word_vectors.npy), so `vocab.pretrained_words` moves words
between the groups. Without word vectors no word has one: only OOEV and OOBV exist.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.corpus import Sentence

CATEGORIES = ("IV", "OOTV", "OOEV", "OOBV")


def normalize(token: str, lowercase: bool) -> str:
    """The form a token is looked up in the word vocabulary with."""
    return token.lower() if lowercase else token


@dataclass(frozen=True)
class Lexicon:
    train_words: frozenset[str]  # lookup forms of every train token
    embedded_words: frozenset[str]  # lookup forms with a pretrained vector
    lowercase: bool
    has_vectors: bool

    @classmethod
    def of_run(cls, train: list[Sentence], words: list[str], vectors: np.ndarray | None,
               lowercase: bool) -> Lexicon:
        """From the train split, words.txt and its vectors (NaN rows: no pretrained vector; None: no vectors)."""
        embedded = frozenset() if vectors is None else frozenset(
            word for word, row in zip(words, vectors) if np.isfinite(row).all())
        return cls(frozenset(normalize(token, lowercase) for s in train for token in s.tokens), embedded,
                   lowercase, vectors is not None)

    def category(self, tokens: list[str]) -> str:
        """The category of a word (one token) or of an entity (its tokens), by the rule above."""
        forms = [normalize(token, self.lowercase) for token in tokens]
        out_of_train = any(form not in self.train_words for form in forms)
        out_of_embeddings = any(form not in self.embedded_words for form in forms)
        return CATEGORIES[2 * out_of_embeddings + out_of_train]

    @property
    def possible_categories(self) -> tuple[str, ...]:
        return CATEGORIES if self.has_vectors else ("OOEV", "OOBV")
