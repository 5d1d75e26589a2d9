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

from pipeline.errors import PipelineError

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
        raise PipelineError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise PipelineError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


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


def seed_stats(values: list[float]) -> dict:
    """Mean, sample standard deviation, min and max of a score over seeds."""
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"n": len(values), "mean": float(values.mean()), "std": std,
            "min": float(values.min()), "max": float(values.max())}


def _stack(counts: list[np.ndarray]) -> np.ndarray:
    """Per-seed (n_sentences, 3) counts -> (3, seeds, n_sentences): correct, predicted, gold."""
    return np.stack(counts).transpose(2, 0, 1).astype(float)


def _mean_f1_gain(correct_a, predicted_a, correct_b, predicted_b, gold):
    """Mean over seeds of F1(b) - F1(a), from counts shaped (..., seeds, sentences); F1 = 2c/(p+g)."""
    g = np.expand_dims(gold.sum(-1), -1)  # (..., 1): the same for every seed

    def f1(c, p):
        c, denominator = np.broadcast_arrays(200 * c.sum(-1), p.sum(-1) + g)
        return np.divide(c, denominator, out=np.zeros(c.shape), where=denominator > 0)

    return (f1(correct_b, predicted_b) - f1(correct_a, predicted_a)).mean(-1)


def _check_same_gold(counts_a: list[np.ndarray], counts_b: list[np.ndarray]) -> None:
    if len(counts_a) != len(counts_b):
        raise PipelineError(f"{len(counts_a)} seeds for one tagger but {len(counts_b)} for the other")
    if any(not np.array_equal(a[:, 2], b[:, 2]) for a in counts_a for b in counts_b):
        raise PipelineError("the two taggers were scored on different gold sentences")


def paired_bootstrap(counts_a: list[np.ndarray], counts_b: list[np.ndarray], resamples: int, seed: int) -> dict:
    """Mean over seeds of F1(b) - F1(a), and its 95% percentile interval from resampling sentences.

    `counts_*[s]` come from `sentence_counts` for seed s on the same gold sentences. Each resample
    draws sentences with replacement and scores both taggers (all seeds) on the same draw.
    """
    _check_same_gold(counts_a, counts_b)
    seeds = len(counts_a)
    # scipy resamples 1-D samples (with paired=True, all with the same indices): one per seed and count
    columns = [c[:, k].astype(float) for counts in (counts_a, counts_b) for c in counts for k in (0, 1)]
    columns.append(counts_a[0][:, 2].astype(float))

    def statistic(*columns, axis=-1):
        *per_seed, gold = columns
        stack = lambda start, stop: np.stack(per_seed[start:stop:2], axis=-2)  # (..., seeds, sentences)
        return _mean_f1_gain(stack(0, 2 * seeds), stack(1, 2 * seeds), stack(2 * seeds, None),
                             stack(2 * seeds + 1, None), gold)

    delta = float(statistic(*columns))
    result = stats.bootstrap(columns, statistic, paired=True, vectorized=True, n_resamples=resamples,
                             confidence_level=0.95, method="percentile", batch=50, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return {"f1": delta, "ci95": [float(low), float(high)]}


def randomization_test(counts_a: list[np.ndarray], counts_b: list[np.ndarray], resamples: int, seed: int) -> float:
    """Two-sided p-value of the mean F1 gain by approximate randomization (paired permutation).

    Under the null hypothesis the two taggers are exchangeable, so each sentence's outputs
    (for every seed at once) are swapped between them with probability 1/2. scipy's
    permutation_test does the resampling: one sample of sentence numbers whose sign it flips,
    a negative sign meaning "swap this sentence". With few sentences it enumerates every swap.
    The two-sided p-value is scipy's: twice the smaller one-sided p, each +1 corrected, so
    2/(resamples + 1) is the smallest it can report.
    """
    _check_same_gold(counts_a, counts_b)
    (ca, pa, gold), (cb, pb, _) = _stack(counts_a), _stack(counts_b)

    def statistic(signed, axis=-1):
        swap = np.expand_dims(np.moveaxis(signed, axis, -1) < 0, -2)  # (..., 1, sentences)
        return _mean_f1_gain(np.where(swap, cb, ca), np.where(swap, pb, pa),
                             np.where(swap, ca, cb), np.where(swap, pa, pb), gold[0])

    sentence_numbers = np.arange(1, ca.shape[-1] + 1)
    result = stats.permutation_test((sentence_numbers,), statistic, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, alternative="two-sided", batch=50,
                                    rng=np.random.default_rng(seed))
    return float(result.pvalue)
