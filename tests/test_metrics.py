import numpy as np
import pytest
from scipy import stats
from seqeval.metrics import f1_score

from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import (
    paired_bootstrap,
    paired_bootstraps,
    randomization_test,
    randomization_tests,
    score,
    seed_stats,
    sentence_counts,
)


def f1_of(gold, pred):
    return score(gold, pred)["f1"]


# Hand-worked with conlleval's rules: an entity counts only if its type and both boundaries match.
def test_boundary_error_counts_as_one_false_positive_and_one_miss():
    result = score([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)


def test_type_error_is_wrong():
    assert f1_of([["B-PER", "I-PER"]], [["B-ORG", "I-ORG"]]) == 0.0


def test_i_after_o_starts_an_entity():
    assert f1_of([["O", "B-LOC", "I-LOC"]], [["O", "I-LOC", "I-LOC"]]) == 100.0


def test_type_change_inside_a_chunk_splits_it():
    # I-LOC after B-PER ends the PER entity and starts a LOC one
    assert f1_of([["B-PER", "B-LOC", "O"]], [["B-PER", "I-LOC", "O"]]) == 100.0


def test_entity_at_sentence_end_and_sentence_boundaries():
    # the second sentence's leading I-PER starts a new entity; it does not continue the first's
    gold = [["O", "B-PER", "I-PER"], ["I-PER", "O"]]
    assert f1_of(gold, [["O", "B-PER", "I-PER"], ["B-PER", "O"]]) == 100.0


def test_precision_recall_f1_and_per_type_on_a_mixed_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]  # 4 entities
    pred = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-PER", "B-MISC", "O"]]  # 5, of which 3 right
    result = score(gold, pred)
    assert result["precision"] == pytest.approx(60.0)
    assert result["recall"] == pytest.approx(75.0)
    assert result["f1"] == pytest.approx(2 * 60 * 75 / 135)
    assert result["per_type"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["per_type"]["PER"]["precision"] == 50.0 and result["per_type"]["PER"]["support"] == 1
    assert result["accuracy"] == pytest.approx(100 * 6 / 8)
    # per-class token accuracy: B-PER 1, I-PER 1, O 1/2, B-LOC 1, B-ORG 1, B-MISC 1, I-MISC 0 -> mean 5.5/7
    assert result["macro_accuracy"] == pytest.approx(100 * 5.5 / 7)


def test_agrees_with_seqeval_on_real_data_with_noisy_predictions(real_dev):
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    gold = [s.tags for s in real_dev]
    pred = [[tags[rng.integers(9)] if rng.random() < 0.1 else t for t in s] for s in gold]
    assert f1_of(gold, pred) == pytest.approx(100 * f1_score(gold, pred))
    assert f1_of(gold, gold) == 100.0


def test_misaligned_predictions_are_refused():
    with pytest.raises(PipelineError, match="sentence 0: 2 gold tags but 1 predicted"):
        score([["O", "O"]], [["O"]])


def test_bootstrap_of_identical_taggers_is_zero():
    counts = sentence_counts([["B-PER", "O"], ["B-LOC"]], [["B-PER", "O"], ["O"]])
    assert paired_bootstrap([counts], [counts], 1000, seed=1) == {"f1": 0.0, "ci95": [0.0, 0.0]}
    assert randomization_test([counts], [counts], 1000, seed=1) == 1.0


# Two sentences with one entity each. A misses sentence 1, B gets both.
GOLD = [["B-PER"], ["B-LOC"]]
A_COUNTS = sentence_counts(GOLD, [["B-ORG"], ["B-LOC"]])
B_COUNTS = sentence_counts(GOLD, GOLD)


def test_bootstrap_interval_hand_computed():
    # Resampling two sentences gives {1,1}: F1 0 vs 100 (+100), {1,2}: 50 vs 100 (+50), {2,2}: +0,
    # with probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles are 0 and 100.
    result = paired_bootstrap([A_COUNTS], [B_COUNTS], 2000, seed=0)
    assert result["f1"] == pytest.approx(50.0)
    assert result["ci95"] == pytest.approx([0.0, 100.0])
    assert paired_bootstrap([A_COUNTS], [B_COUNTS], 2000, seed=0) == result  # seeded: the same interval again


def test_bootstrap_pools_seeds_on_the_same_sentence_draws():
    # seed 1 as above (+100/+50/+0 per draw), seed 2 identical taggers (+0): the mean gain halves
    result = paired_bootstrap([A_COUNTS, B_COUNTS], [B_COUNTS, B_COUNTS], 2000, seed=0)
    assert result["f1"] == pytest.approx(25.0)
    assert result["ci95"] == pytest.approx([0.0, 50.0])


def test_randomization_test_hand_computed():
    # Three one-entity sentences, A misses all, B gets all: observed gain +100. Swapping k
    # sentences gives 100 * (3 - 2k) / 3, so |gain| >= 100 only for k = 0 or 3: p = 2/8 exactly
    # (scipy enumerates all 8 swaps when resamples exceed them).
    gold = [["B-PER"], ["B-LOC"], ["B-ORG"]]
    a, b = sentence_counts(gold, [["O"], ["O"], ["O"]]), sentence_counts(gold, gold)
    assert randomization_test([a], [b], 2000, seed=0) == pytest.approx(0.25)
    assert randomization_test([b], [a], 2000, seed=0) == pytest.approx(0.25)  # two-sided
    # with two sentences every swap pattern keeps |gain| = 50: no evidence at all
    assert randomization_test([A_COUNTS], [B_COUNTS], 2000, seed=0) == pytest.approx(1.0)


def test_a_real_difference_on_real_data_is_significant(real_dev):
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    gold = [s.tags for s in real_dev]
    noisy = lambda rate: [[tags[rng.integers(9)] if rng.random() < rate else t for t in s] for s in gold]
    worse = [sentence_counts(gold, noisy(0.10)) for _ in range(2)]
    better = [sentence_counts(gold, noisy(0.08)) for _ in range(2)]
    gain = paired_bootstrap(worse, better, 1000, seed=0)
    assert 0 < gain["ci95"][0] < gain["f1"] < gain["ci95"][1]
    assert randomization_test(worse, better, 1000, seed=0) < 0.01


def test_seed_stats():
    assert seed_stats([80.0, 82.0, 84.0]) == {"n": 3, "mean": 82.0, "std": 2.0, "min": 80.0, "max": 84.0}
    assert seed_stats([80.0])["std"] == 0.0


def test_bootstrap_needs_the_same_gold():
    a = sentence_counts([["B-PER"]], [["B-PER"]])
    b = sentence_counts([["O"]], [["O"]])
    with pytest.raises(PipelineError, match="different gold sentences"):
        paired_bootstrap([a], [b], 1000, seed=0)


# The statistics as they were computed before the vectorised versions, one pair per scipy call
# (kept verbatim as the oracle: the vectorised ones must give the same figures to the last digit).
def _reference_stack(counts):
    return np.stack(counts).transpose(2, 0, 1).astype(float)


def _reference_mean_f1_gain(correct_a, predicted_a, correct_b, predicted_b, gold):
    g = np.expand_dims(gold.sum(-1), -1)

    def f1(c, p):
        c, denominator = np.broadcast_arrays(200 * c.sum(-1), p.sum(-1) + g)
        return np.divide(c, denominator, out=np.zeros(c.shape), where=denominator > 0)

    return (f1(correct_b, predicted_b) - f1(correct_a, predicted_a)).mean(-1)


def reference_bootstrap(counts_a, counts_b, resamples, seed):
    seeds = len(counts_a)
    columns = [c[:, k].astype(float) for counts in (counts_a, counts_b) for c in counts for k in (0, 1)]
    columns.append(counts_a[0][:, 2].astype(float))

    def statistic(*columns, axis=-1):
        *per_seed, gold = columns
        stack = lambda start, stop: np.stack(per_seed[start:stop:2], axis=-2)
        return _reference_mean_f1_gain(stack(0, 2 * seeds), stack(1, 2 * seeds), stack(2 * seeds, None),
                                       stack(2 * seeds + 1, None), gold)

    delta = float(statistic(*columns))
    result = stats.bootstrap(columns, statistic, paired=True, vectorized=True, n_resamples=resamples,
                             confidence_level=0.95, method="percentile", batch=50, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return {"f1": delta, "ci95": [float(low), float(high)]}


def reference_randomization(counts_a, counts_b, resamples, seed):
    (ca, pa, gold), (cb, pb, _) = _reference_stack(counts_a), _reference_stack(counts_b)

    def statistic(signed, axis=-1):
        swap = np.expand_dims(np.moveaxis(signed, axis, -1) < 0, -2)
        return _reference_mean_f1_gain(np.where(swap, cb, ca), np.where(swap, pb, pa),
                                       np.where(swap, ca, cb), np.where(swap, pa, pb), gold[0])

    result = stats.permutation_test((np.arange(1, ca.shape[-1] + 1),), statistic, permutation_type="samples",
                                    vectorized=True, n_resamples=resamples, alternative="two-sided", batch=50,
                                    rng=np.random.default_rng(seed))
    return float(result.pvalue)


def hand_built_pairs(sentences, seeds, pairs, rng):
    """Pairs of taggers' per-seed counts on shared gold sentences, b better than a on some of them;
    one pair has no entity at all (a group nobody predicts)."""
    built = []
    for index in range(pairs):
        gold = rng.integers(0, 3, sentences) * (index != 0)
        counts = []
        for quality in (0.8, 0.9):
            per_seed = []
            for _ in range(seeds):
                predicted = np.clip(gold + rng.integers(-1, 2, sentences), 0, None) * (index != 0)
                correct = np.minimum(gold, predicted) * (rng.random(sentences) < quality)
                per_seed.append(np.stack([correct, predicted, gold], axis=1))
            counts.append(per_seed)
        built.append(tuple(counts))
    return built


@pytest.mark.parametrize("sentences, seeds, resamples", [(300, 3, 1000), (301, 2, 1030), (9, 2, 1000)],
                         ids=["resampled", "a partial batch", "enumerated"])
def test_the_vectorised_statistics_equal_one_scipy_call_per_pair(sentences, seeds, resamples):
    pairs = hand_built_pairs(sentences, seeds, 5, np.random.default_rng(7))
    bootstraps = paired_bootstraps(pairs, resamples, seed=42)
    p_values = randomization_tests(pairs, resamples, seed=42)
    for (a, b), bootstrap, p_value in zip(pairs, bootstraps, p_values, strict=True):
        assert bootstrap == reference_bootstrap(a, b, resamples, 42)  # to the last digit
        assert p_value == reference_randomization(a, b, resamples, 42)
    assert bootstraps[0] == {"f1": 0.0, "ci95": [0.0, 0.0]} and p_values[0] == 1.0
    assert len({tuple(b["ci95"]) for b in bootstraps}) == len(pairs)  # the pairs did not share one answer
