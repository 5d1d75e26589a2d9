"""Scores as conlleval computes them, plus the paired bootstrap for the difference of two taggers.

Chunking uses seqeval's `get_entities`, a port of conlleval's chunk rules (an I- after O or
after another type starts an entity); only the counting is here, per sentence, so the
bootstrap can resample sentences. All scores are percentages, as conlleval prints them.
"""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from scipy import stats
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import balanced_accuracy_score

Tags = list[list[str]]  # one list of tags per sentence


def prf(tp: float, n_pred: float, n_gold: float) -> tuple[float, float, float]:
    """Precision, recall, F1 in percent; 0 where undefined, as conlleval does."""
    precision = 100 * tp / n_pred if n_pred else 0.0
    recall = 100 * tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_counts(gold: list[str], pred: list[str]) -> tuple[Counter, Counter, Counter]:
    """Per entity type: correct, predicted and gold entity counts for one sentence."""
    gold_entities, pred_entities = set(get_entities(gold)), set(get_entities(pred))
    types = lambda entities: Counter(entity[0] for entity in entities)
    return types(gold_entities & pred_entities), types(pred_entities), types(gold_entities)


def sentence_counts(gold: Tags, pred: Tags) -> np.ndarray:
    """(n_sentences, 3) array of [correct, predicted, gold] entity counts, for the bootstrap."""
    rows = [[sum(c.values()) for c in entity_counts(g, p)] for g, p in zip(gold, pred, strict=True)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def check_aligned(gold: Tags, pred: Tags) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def score(gold: Tags, pred: Tags) -> dict:
    """Entity-level micro P/R/F1 and per type (conlleval), token accuracy and macro accuracy.

    `macro_accuracy` is the mean over tag classes of the share of that class's tokens tagged
    correctly (the book chapter's per-class mean accuracy; = balanced accuracy).
    """
    check_aligned(gold, pred)
    correct, predicted, actual = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        c, pr, ac = entity_counts(g, p)
        correct.update(c), predicted.update(pr), actual.update(ac)
    precision, recall, f1 = prf(sum(correct.values()), sum(predicted.values()), sum(actual.values()))
    per_type = {}
    for entity_type in sorted(set(actual) | set(predicted)):
        p, r, f = prf(correct[entity_type], predicted[entity_type], actual[entity_type])
        per_type[entity_type] = {"precision": p, "recall": r, "f1": f, "support": actual[entity_type]}
    gold_flat = [tag for tags in gold for tag in tags]
    pred_flat = [tag for tags in pred for tag in tags]
    accuracy = 100 * sum(g == p for g, p in zip(gold_flat, pred_flat)) / len(gold_flat)
    with warnings.catch_warnings():  # predicted tags absent from gold are expected on small splits
        warnings.simplefilter("ignore", UserWarning)
        macro_accuracy = 100 * balanced_accuracy_score(gold_flat, pred_flat)
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": accuracy,
            "macro_accuracy": macro_accuracy, "per_type": per_type}


def _f1_difference(correct_a, predicted_a, correct_b, predicted_b, gold, axis=-1):
    """F1(b) - F1(a) from per-sentence counts; vectorized over bootstrap resamples."""
    def f1(correct, predicted):
        c, p, g = (np.sum(x, axis=axis).astype(float) for x in (correct, predicted, gold))
        return np.divide(200 * c, p + g, out=np.zeros_like(c), where=(p + g) > 0)  # 2PR/(P+R) = 2c/(p+g)
    return f1(correct_b, predicted_b) - f1(correct_a, predicted_a)


def paired_bootstrap(counts_a: np.ndarray, counts_b: np.ndarray, resamples: int, seed: int) -> dict:
    """F1(b) - F1(a) and its 95% percentile interval, resampling sentences with both taggers paired.

    `counts_*` come from `sentence_counts` on the same gold sentences.
    """
    if not np.array_equal(counts_a[:, 2], counts_b[:, 2]):
        raise ValueError("the two taggers were scored on different gold sentences")
    data = (counts_a[:, 0], counts_a[:, 1], counts_b[:, 0], counts_b[:, 1], counts_a[:, 2])
    delta = float(_f1_difference(*data))
    result = stats.bootstrap(data, _f1_difference, paired=True, vectorized=True, n_resamples=resamples,
                             confidence_level=0.95, method="percentile", batch=100,
                             rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return {"f1": delta, "ci95": [float(low), float(high)]}
