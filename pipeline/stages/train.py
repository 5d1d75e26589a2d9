"""Stage `train`: train every tagger of params.yaml's `models` once per seed -> models/<model>/
seed_<n>/, one MLflow run per (model, seed) (the tagger itself is logged by `evaluate`, for each
model's best seed on dev).

Every (model, seed) pair is one Ray task (pipeline/training/pairs.py), all in this one stage so
that a cluster can run them at once. Pairs whose fingerprint is unchanged are kept
(pipeline/training/pairs.py). Workers only compute: this process writes each finished pair
into place and logs its run, so a retried task leaves no duplicate run."""
from __future__ import annotations

from pipeline.stages.arguments import parse_stage_args

if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below (seconds)
    parse_stage_args("train")

from pipeline.data.corpus import Sentence, check_known_tags, read_split, split_source
from pipeline.data.vocabulary import Vocabulary, load_vocabulary
from pipeline.errors import exits_cleanly
from pipeline.layout import split_file
from pipeline.model.trained import frozen_rows_file, save_trained
from pipeline.params import Params, load_params
from pipeline.progress import StageProgress, native_stderr_to_log
from pipeline.tracking import runs
from pipeline.tracking.experiment import open_experiment
from pipeline.training import cluster
from pipeline.training.pairs import TrainedPair, check_recipe, pair_summary, plan, staged_pair, train_pair


def install(name: str, seed: int, result: TrainedPair, params: Params, expected: str, train: list[Sentence],
            vocabulary: Vocabulary, frozen_rows: bytes | None, where: cluster.Cluster) -> dict:
    """Log a finished pair's MLflow run and move its folder into place; return its summary."""
    summary = pair_summary(name, seed, result, train, expected)
    sizes = {"n_words": len(vocabulary.words), "n_chars": len(vocabulary.chars), "n_tags": len(vocabulary.tags),
             "train_sentences": len(train)}
    tags = {**result.worker, "ray.cluster": where.address}
    with staged_pair(name, seed) as folder, runs.training_run(name, seed, params, sizes, tags,
                                                               result.started) as run_id:
        summary = {"mlflow_run_id": run_id, **summary}
        save_trained(folder, result.tagger, frozen_rows, result.history, summary)
        runs.log_history(result.history, result.started)
        runs.log_training_result(summary["best_epoch"], result.seconds)
    return summary


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("train", argv)
    native_stderr_to_log("train")
    params = load_params()
    vocabulary = load_vocabulary(params.model.word_vectors, params.model.word_dim)
    train, dev = read_split("train"), read_split("dev")
    check_known_tags(dev, set(vocabulary.tags), split_source("dev"))
    check_recipe(params, train, str(split_file("train")))
    open_experiment()  # a tracking server that is down stops the stage here, in seconds
    expected, todo = plan(params)
    if not todo:
        return
    frozen_rows = frozen_rows_file(vocabulary, train, params.vocab.lowercase)  # one file for every pair
    where = cluster.connect(params.cluster)
    progress = StageProgress("train", len(todo))
    try:
        progress.say(f"{len(todo)} trainings on {where.describe()}, {params.train.threads} thread(s) each")
        train_ref, dev_ref, vocabulary_ref = cluster.put(train), cluster.put(dev), cluster.put(vocabulary)
        pairs = {f"{name} seed {seed}": (name, seed) for name, seed in todo}
        calls = [(label, (name, seed, params, train_ref, dev_ref, vocabulary_ref, expected[name, seed]))
                 for label, (name, seed) in pairs.items()]
        for label, result in cluster.run_tasks(train_pair, calls, params.train.threads, where,
                                               params.cluster.max_retries, on_progress=progress.epoch):
            name, seed = pairs[label]
            summary = install(name, seed, result, params, expected[name, seed], train, vocabulary, frozen_rows,
                              where)
            progress.finished(label, result.output, f"best dev F1 {summary['best_dev_f1']:.2f} in epoch "
                              f"{summary['best_epoch']} of {summary['epochs_run']}, {summary['train_seconds']:.0f} s")
    finally:
        progress.close()
        cluster.shutdown()


if __name__ == "__main__":
    main()
