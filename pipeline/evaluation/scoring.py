"""Scoring every trained (model, seed) on every split and comparing the models: the typed result
that the report, the plots and MLflow render.

Per model and split the scores are means over seeds, with the spread of F1 over seeds. For each
compared pair [a, b] the gain is F1(b) - F1(a), averaged over seeds, with a paired bootstrap 95%
interval over sentences and an approximate randomization p-value. Every token of every sentence
is tagged: no truncation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.corpus import Sentence, check_known_tags
from pipeline.evaluation.metrics import (
    Tags,
    paired_bootstraps,
    prf,
    randomization_tests,
    score,
    seed_stats,
    sentence_counts,
)
from pipeline.model.tagger import Tagger
from pipeline.model.trained import SUMMARY_FILE, TrainedRun
from pipeline.params import EvaluateParams

HEADLINE = ("f1", "precision", "recall", "accuracy", "macro_accuracy")
CHAR_GAIN = ("baseline", "char_cnn")  # the pair `char_gain` stays an alias of, for existing users


def gain_key(a: str, b: str) -> str:
    return f"{a}_vs_{b}"


@dataclass
class Evaluation:
    runs: dict[str, list[TrainedRun]]  # model -> one run per seed
    comparisons: list[tuple[str, str]]
    splits: list[str]
    tags: list[str]  # the tag set the taggers were trained on
    gold: dict[str, Tags]  # split -> gold tags
    predicted: dict[tuple[str, str, int], Tags]  # (split, model, seed) -> predicted tags
    scores: dict[tuple[str, str, int], dict]  # (split, model, seed) -> score()
    metrics: dict  # the content of reports/metrics.json

    @property
    def models(self) -> list[str]:
        return list(self.runs)

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in next(iter(self.runs.values()))]

    @property
    def figure_split(self) -> str:
        """The split the per-type and confusion figures show: test where there is one."""
        return "test" if "test" in self.splits else self.splits[-1]


def mean_over_seeds(scores: list):
    """Element-wise mean of nested score dicts (one per seed)."""
    if isinstance(scores[0], dict):
        return {key: mean_over_seeds([s[key] for s in scores]) for key in scores[0]}
    return scores[0] if isinstance(scores[0], int) else float(np.mean(scores))  # ints: support, equal across seeds


def rounded(value, digits: int = 4):
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return round(value, digits) if isinstance(value, float) else value


def gain_stats(counts_a: list[np.ndarray], counts_b: list[np.ndarray], seeds: list[int],
               params: EvaluateParams) -> dict:
    """The gain F1(b) - F1(a) from per-seed sentence counts (`sentence_counts`, or a group's counts):
    mean over seeds, paired bootstrap 95% interval, spread over seeds, randomization p-value."""
    f1 = lambda counts: prf(*counts.sum(axis=0))[2]
    per_seed = {str(seed): f1(b) - f1(a) for seed, a, b in zip(seeds, counts_a, counts_b, strict=True)}
    spread = seed_stats(list(per_seed.values()))
    [interval] = gain_intervals([(counts_a, counts_b)], params)
    return {"f1": interval["f1"], "ci95": interval["ci95"],
            "seeds": {"n": spread["n"], "mean": spread["mean"], "std": spread["std"], "per_seed": per_seed},
            "p_value": interval["p_value"]}


def gain_intervals(pairs: list[tuple[list[np.ndarray], list[np.ndarray]]], params: EvaluateParams) -> list[dict]:
    """The gain F1(b) - F1(a) of many pairs of counts on the same sentences, each with its bootstrap
    interval and p-value, in one pass: every pair sees the same resamples, so each figure is the
    one a computation for that pair alone gives (pipeline/evaluation/metrics.py)."""
    bootstraps = paired_bootstraps(pairs, params.bootstrap_resamples, params.seed)
    p_values = randomization_tests(pairs, params.permutation_resamples, params.seed)
    return [{**bootstrap, "p_value": p_value} for bootstrap, p_value in zip(bootstraps, p_values, strict=True)]


def trained_tagger(run: TrainedRun) -> Tagger:
    """The run's tagger, checked to be the training its summary.json describes."""
    tagger = Tagger.from_file(run.tagger_file)
    tagger.check_trained_as(run.summary, run.folder / SUMMARY_FILE)
    return tagger


def evaluate(runs: dict[str, list[TrainedRun]], data: dict[str, list[Sentence]], comparisons: list[tuple[str, str]],
             params: EvaluateParams, split_names: dict[str, str] | None = None) -> Evaluation:
    """Tag every split in `data` (split -> sentences) with every run, score, and compare the pairs.
    `split_names` names each split's file in messages."""
    metrics: dict = {name: {} for name in runs}
    metrics["gains"] = {gain_key(a, b): {} for a, b in comparisons}
    predicted, scores, gold = {}, {}, {}
    taggers = {(run.model, run.seed): trained_tagger(run) for model_runs in runs.values() for run in model_runs}
    tags = next(iter(taggers.values())).tags
    for split, sentences in data.items():
        gold[split] = [s.tags for s in sentences]
        counts: dict[str, list[np.ndarray]] = {}
        for name, model_runs in runs.items():
            per_seed = []
            for run in model_runs:
                tagger = taggers[name, run.seed]
                check_known_tags(sentences, set(tagger.tags), (split_names or {}).get(split, split))
                predicted[split, name, run.seed] = tagger.tag_tokens([s.tokens for s in sentences], params.batch_size)
                scores[split, name, run.seed] = score(gold[split], predicted[split, name, run.seed])
                per_seed.append(scores[split, name, run.seed])
                counts.setdefault(name, []).append(sentence_counts(gold[split], predicted[split, name, run.seed]))
            f1s = {str(run.seed): s["f1"] for run, s in zip(model_runs, per_seed)}
            metrics[name][split] = {**mean_over_seeds(per_seed),
                                    "seeds": {**seed_stats(list(f1s.values())), "per_seed": f1s}}
        for a, b in comparisons:
            seeds = [run.seed for run in runs[a]]
            gain = metrics["gains"][gain_key(a, b)][split] = gain_stats(counts[a], counts[b], seeds, params)
            print(f"{split}: {b} - {a}: {gain['f1']:+.2f} [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}], "
                  f"p = {gain['p_value']:.4f}")
        print(f"{split}: " + ", ".join(f"{name} F1 {metrics[name][split]['f1']:.2f} "
                                       f"(sd {metrics[name][split]['seeds']['std']:.2f})" for name in runs))
    if tuple(CHAR_GAIN) in [tuple(pair) for pair in comparisons]:
        metrics["char_gain"] = metrics["gains"][gain_key(*CHAR_GAIN)]
    metrics["training"] = {name: {str(run.seed): {key: run.summary[key] for key in
                                                  ("best_epoch", "epochs_run", "train_seconds")}
                                  for run in model_runs} for name, model_runs in runs.items()}
    return Evaluation(runs, [tuple(pair) for pair in comparisons], list(data), tags, gold, predicted, scores,
                      rounded(metrics))
