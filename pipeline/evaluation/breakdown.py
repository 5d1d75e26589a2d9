"""Where the gain comes from: every model's entity F1 and every compared pair's gain (mean over
seeds, paired bootstrap interval, p-value: the statistics of the overall gain) within groups of
entities, and examples of entities one model of a pair finds and the other misses.

Entities are grouped four ways:
- category: the word categories of Ma & Hovy (2016), IV / OOTV / OOEV / OOBV (pipeline/data/lexicon.py);
- type: the entity type (PER, LOC, ...);
- length: tokens in the entity, 1, 2 or 3+;
- casing: the casing class of the entity's first token, as the taggers' casing feature computes it.

An entity's group follows from its own tokens, so a predicted entity that matches no gold entity
counts as a false positive of the group its span falls in: precision, recall and F1 are defined
per group exactly as conlleval defines them overall.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from pipeline.data.corpus import Sentence
from pipeline.data.lexicon import CATEGORIES, Lexicon
from pipeline.evaluation.metrics import Span, Tags, entity_spans, prf
from pipeline.evaluation.scoring import Evaluation, gain_intervals, gain_key
from pipeline.model.casing import CASINGS, casing_class
from pipeline.params import EvaluateParams

DIMENSIONS = ("category", "type", "length", "casing")
LENGTHS = ("1", "2", "3+")
EXAMPLES_PER_DIRECTION = 20

def length_group(first: int, last: int) -> str:
    length = last - first + 1
    return str(length) if length < 3 else "3+"


def token_casings(sentences: list[Sentence]) -> list[list[str]]:
    """Each token's casing class, by the rule of the taggers' casing feature (pipeline/model/casing.py)."""
    return [[CASINGS[casing_class(token) - 1] for token in sentence.tokens] for sentence in sentences]


class EntityGroups:
    """The group, in each dimension, of any entity span of one split's sentences."""

    def __init__(self, sentences: list[Sentence], lexicon: Lexicon):
        self.sentences, self.lexicon = sentences, lexicon
        self.casings = token_casings(sentences)
        self.known: dict[tuple[int, Span], tuple[str, ...]] = {}  # every run asks for the same gold spans

    def of(self, sentence: int, span: Span) -> tuple[str, ...]:
        """(category, type, length, casing) of `span` in sentence number `sentence`."""
        if (sentence, span) not in self.known:
            entity_type, first, last = span
            self.known[sentence, span] = (self.lexicon.category(self.sentences[sentence].tokens[first:last + 1]),
                                          entity_type, length_group(first, last), self.casings[sentence][first])
        return self.known[sentence, span]


def entity_sets(tags: Tags) -> list[frozenset[Span]]:
    return [entity_spans(sentence_tags) for sentence_tags in tags]


def group_counts(gold: list[frozenset[Span]], pred: list[frozenset[Span]],
                 groups: EntityGroups) -> dict[tuple[str, str], np.ndarray]:
    """(dimension, group) -> (n_sentences, 3) [correct, predicted, gold] entity counts within the
    group: what `metrics.sentence_counts` gives for all entities, so the same statistics apply."""
    counts: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros((len(gold), 3), np.int64))
    for sentence, (gold_spans, pred_spans) in enumerate(zip(gold, pred, strict=True)):
        for column, spans in enumerate((gold_spans & pred_spans, pred_spans, gold_spans)):
            for span in spans:
                for dimension, group in zip(DIMENSIONS, groups.of(sentence, span)):
                    counts[dimension, group][sentence, column] += 1
    return counts


def group_order(dimension: str, groups: set[str]) -> list[str]:
    order = {"category": CATEGORIES, "length": LENGTHS, "casing": CASINGS}.get(dimension)
    return [g for g in order if g in groups] if order else sorted(groups)


def f1_of(counts: np.ndarray) -> float:
    return prf(*counts.sum(axis=0))[2]


@dataclass
class Breakdown:
    metrics: dict  # split -> dimension -> group -> {"entities", "f1": {model: mean}, "gains": {pair: stats}}
    examples: dict  # pair key -> {"pair", "split", "gained", "lost", "gained_total", "lost_total"}: see `examples`
    categories: tuple[str, ...]  # the word categories this run's vocabulary can produce


def break_down(evaluation: Evaluation, data: dict[str, list[Sentence]], lexicon: Lexicon,
               params: EvaluateParams) -> Breakdown:
    """The breakdown of every split of `evaluation` (whose sentences `data` holds) and every compared pair."""
    metrics = {}
    for split in evaluation.splits:
        groups = EntityGroups(data[split], lexicon)
        gold = entity_sets(evaluation.gold[split])
        counts = {(name, seed): group_counts(gold, entity_sets(evaluation.predicted[split, name, seed]), groups)
                  for name in evaluation.models for seed in evaluation.seeds}
        gold_counts = group_counts(gold, gold, groups)  # every gold entity's group, whatever was predicted
        keys = [(dimension, group) for dimension in DIMENSIONS
                for group in group_order(dimension, {g for d, g in gold_counts if d == dimension})]
        zeros = np.zeros((len(gold), 3), np.int64)
        metrics[split] = {dimension: {} for dimension in DIMENSIONS}
        runs = {key: {name: [counts[name, seed].get(key, zeros) for seed in evaluation.seeds]
                      for name in evaluation.models} for key in keys}
        # every group's and pair's interval and p-value in one pass (the same resamples for all)
        compared = [(key, a, b) for key in keys for a, b in evaluation.comparisons]
        intervals = gain_intervals([(runs[key][a], runs[key][b]) for key, a, b in compared], params)
        gains = {(key, gain_key(a, b)): interval for (key, a, b), interval in zip(compared, intervals, strict=True)}
        for dimension, group in keys:
            metrics[split][dimension][group] = {
                "entities": int(gold_counts[dimension, group][:, 2].sum()),
                "f1": {name: float(np.mean([f1_of(c) for c in runs[dimension, group][name]]))
                       for name in evaluation.models},
                "gains": {gain_key(a, b): gains[(dimension, group), gain_key(a, b)] for a, b in evaluation.comparisons}}
    split = evaluation.figure_split
    found = {name: [entity_sets(evaluation.predicted[split, name, seed]) for seed in evaluation.seeds]
             for name in evaluation.models}
    groups = EntityGroups(data[split], lexicon)
    return Breakdown(metrics, {gain_key(a, b): examples(a, b, split, data[split], entity_sets(evaluation.gold[split]),
                                                        found, groups, params.seed)
                               for a, b in evaluation.comparisons}, lexicon.possible_categories)


def examples(a: str, b: str, split: str, sentences: list[Sentence], gold: list[frozenset[Span]],
             found: dict[str, list[list[frozenset[Span]]]], groups: EntityGroups, seed: int) -> dict:
    """For the pair a -> b, the gold entities b finds with every seed and a misses with every seed
    ("gained"), and the other way round ("lost"): robust differences, not seed noise. Up to
    EXAMPLES_PER_DIRECTION of each, drawn at random with `seed` and listed in corpus order; each
    holds the sentence, the gold span, what each model predicted over it (first seed) and its groups."""

    def differences(winner: str, loser: str) -> list[tuple[int, Span]]:
        return [(i, span) for i, spans in enumerate(gold) for span in sorted(spans, key=lambda s: s[1])
                if all(span in run[i] for run in found[winner]) and not any(span in run[i] for run in found[loser])]

    def describe(i: int, span: Span) -> dict:
        overlapping = lambda name: [list(s) for s in sorted(found[name][0][i], key=lambda s: s[1])
                                    if s[1] <= span[2] and span[1] <= s[2]]
        return {"sentence": i, "line": sentences[i].line, "tokens": sentences[i].tokens, "gold": list(span),
                "predicted": {a: overlapping(a), b: overlapping(b)}, **dict(zip(DIMENSIONS, groups.of(i, span)))}

    rng = np.random.default_rng(seed)
    result = {"pair": [a, b], "split": split}
    for direction, (winner, loser) in (("gained", (b, a)), ("lost", (a, b))):
        candidates = differences(winner, loser)
        chosen = sorted(rng.choice(len(candidates), min(EXAMPLES_PER_DIRECTION, len(candidates)), replace=False))
        result[direction] = [describe(*candidates[k]) for k in chosen]
        result[f"{direction}_total"] = len(candidates)
    return result
