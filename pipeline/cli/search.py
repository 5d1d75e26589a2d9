"""`python -m pipeline.cli.search searches/<name>.yaml`: a hyper-parameter search, chosen on dev.

A search file names a tagger of params.yaml, the seeds, and the points to try; each point is
params.yaml with some keys changed (dotted keys, as `dvc exp run -S` takes them), after the
search's `base` changes:

    model: char_cnn
    seeds: [42]
    base: {vocab.pretrained_words: 400000}      # optional: changes every point shares
    points:                                     # name -> its changes
      adam: {}
      sgd: {train.optimizer: sgd, train.learning_rate: 0.015, train.lr_decay: 0.05}

Every (point, seed) trains the tagger on train with early stopping on dev, as one Ray task
(pipeline/training/cluster.py: local Ray, or the cluster at RAY_ADDRESS), exactly as the train stage does.
MLflow gets one parent run per search and one child run per (point, seed) (experiment
`ner-search`); reports/search/<name>.json ranks the points by mean dev F1. Test data is never
read: take the winner into params.yaml and `dvc repro` for its test scores.

The report is rewritten after every finished training, and a search run again keeps the
trainings whose settings, code and data are unchanged (`trial_key`): a crashed or interrupted
search resumes where it stopped, and adding a point or a seed trains only what is new. Trainings
are kept from every report in reports/search/, so a new file that repeats another's points (say,
its leaders over more seeds) trains only the new seeds.

A point that changes the vocabulary (vocab.*, char_vocab.*, model.word_vectors) gets its own,
built in memory the way the vocab stages build it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from datetime import date
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("search", type=Path, help="the search file (searches/<name>.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the file's seeds")
    return parser


if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    build_parser().parse_args()

from pipeline.data.corpus import Sentence, check_known_tags, read_split, split_source
from pipeline.data.vocabulary import Vocabulary, build_char_vocab, build_tag_list, build_word_vocab
from pipeline.data.word_vectors import embedding_rows, load_pretrained
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import REPORTS_DIR
from pipeline.machine import describe_machine
from pipeline.params import Params, load_params, read_yaml
from pipeline.progress import StageProgress
from pipeline.tracking import runs
from pipeline.tracking.experiment import open_experiment
from pipeline.tracking.store import SEARCH_EXPERIMENT
from pipeline.training import cluster
from pipeline.training.pairs import input_digests, train_pair

SEARCH_KEYS = {"model", "seeds", "base", "points"}


def read_search(path: Path) -> dict:
    """The search file, checked: every point's params load (so a typo fails before any training)."""
    spec = read_yaml(path)
    if not isinstance(spec, dict) or not {"model", "points"} <= spec.keys() or spec.keys() - SEARCH_KEYS:
        raise PipelineError(f"{path}: expected the keys model, points and optionally seeds, base "
                            f"(got {', '.join(spec) if isinstance(spec, dict) else type(spec).__name__})")
    seeds = spec.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
                              or not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
                                         for seed in seeds)):
        raise PipelineError(f"{path}: seeds: expected a list of distinct non-negative integers, got {seeds!r}")
    if not isinstance(spec["points"], dict) or not spec["points"]:
        raise PipelineError(f"{path}: points: expected at least one `name: {{key: value, ...}}`")
    for name, changes in spec["points"].items():
        if not isinstance(changes, dict):
            raise PipelineError(f"{path}: points.{name}: expected a mapping of dotted params keys to values")
    threads = {name: point_params(spec, name, path).train.threads for name in spec["points"]}
    if len(set(threads.values())) > 1:  # a Ray worker's TensorFlow thread pools are fixed by its first training
        raise PipelineError(f"{path}: train.threads: every point must train with the same number of threads (got "
                            f"{', '.join(f'{name}: {n}' for name, n in threads.items())}); set it in base")
    return spec


def point_params(spec: dict, point: str, path: Path) -> Params:
    changes = {**(spec.get("base") or {}), **spec["points"][point]}
    try:
        params = load_params(changes=changes)
    except PipelineError as error:
        raise PipelineError(f"{path}: points.{point}: {error}") from None
    if spec["model"] not in params.models:
        raise PipelineError(f"{path}: model: {spec['model']!r} is not in params.yaml's models "
                            f"({', '.join(params.models)})")
    return params


def build_vocabulary(params: Params, train: list[Sentence]) -> Vocabulary:
    """What the vocab and char_vocab stages would write for these params, in memory."""
    vectors_name = params.model.word_vectors
    pretrained_words, pretrained_vectors = load_pretrained(vectors_name) if vectors_name != "none" else (None, None)
    words = build_word_vocab(train, params.vocab, pretrained_words)
    vectors = embedding_rows(words, pretrained_words, pretrained_vectors) if pretrained_words else None
    return Vocabulary(words, build_char_vocab(train, params.char_vocab), build_tag_list(train), vectors)


def vocabulary_key(params: Params) -> str:
    return json.dumps([params.vocab.model_dump(), params.char_vocab.model_dump(), params.model.word_vectors])


def rank(spec: dict, results: dict[tuple[str, int], dict]) -> list[dict]:
    """One row per point, best mean dev F1 first."""
    rows = []
    for point, changes in spec["points"].items():
        runs = [results[point, seed] for seed in spec["seeds"] if (point, seed) in results]
        f1s = [run["best_dev_f1"] for run in runs]
        rows.append({"point": point, "changes": {**(spec.get("base") or {}), **changes},
                     "dev_f1_mean": round(statistics.mean(f1s), 2),
                     "dev_f1_std": round(statistics.stdev(f1s), 2) if len(f1s) > 1 else None,
                     "dev_f1": {str(run["seed"]): round(run["best_dev_f1"], 2) for run in runs},
                     "best_epoch": {str(run["seed"]): run["best_epoch"] for run in runs},
                     "train_seconds_mean": round(statistics.mean(run["train_seconds"] for run in runs), 1),
                     "mlflow_run_ids": [run["mlflow_run_id"] for run in runs]})
    return sorted(rows, key=lambda row: -row["dev_f1_mean"])


def trial_key(model: str, params: Params, seed: int, inputs: dict[str, str]) -> str:
    """What decides a (point, seed) training's result: the tagger's, training's and vocabulary's
    settings, the seed, and the digests of the code and data it reads. A finished training with the
    same key is kept when the search runs again."""
    settings = {"tagger": params.tagger(model).model_dump(), "train": params.train.model_dump(exclude={"seeds"}),
                "vocab": params.vocab.model_dump(), "char_vocab": params.char_vocab.model_dump(), "seed": seed,
                "dev_batch_size": params.evaluate.batch_size, "inputs": inputs}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def search_inputs() -> dict[str, str]:
    """The train stage's code and data digests, less data/vocab (a search builds its vocabularies)."""
    return {path: digest for path, digest in input_digests().items() if not path.startswith("data/vocab")}


def finished_trials(report_file: Path) -> dict[str, dict]:
    """The trainings finished by earlier searches, by key, each with the report it came from. Every
    report in the folder counts (the same key is the same training, whichever file asked for it), and
    this search's own report wins a tie. An unreadable report is skipped: its trainings run again."""
    trials: dict[str, dict] = {}
    for path in sorted(report_file.parent.glob("*.json"), key=lambda path: path == report_file):
        try:
            trials.update({trial["key"]: {**trial, "kept_from": str(path)}
                           for trial in json.loads(path.read_text())["trials"]})
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return trials


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    spec = read_search(args.search)
    spec["seeds"] = args.seeds or spec.get("seeds") or load_params().train.seeds
    if len(set(spec["seeds"])) != len(spec["seeds"]) or min(spec["seeds"]) < 0:
        raise PipelineError(f"--seeds: expected distinct non-negative integers, got {spec['seeds']}")
    name, model = args.search.stem, spec["model"]
    params_of = {point: point_params(spec, point, args.search) for point in spec["points"]}
    report_file = REPORTS_DIR / "search" / f"{name}.json"
    inputs = search_inputs()
    keys = {(point, seed): trial_key(model, params, seed, inputs)
            for point, params in params_of.items() for seed in spec["seeds"]}
    earlier = finished_trials(report_file)
    results = {pair: earlier[key] for pair, key in keys.items() if key in earlier}
    for (point, seed), trial in results.items():
        print(f"search {name}: {point} seed {seed}: dev F1 {trial['best_dev_f1']:.2f}, kept from "
              f"{trial.pop('kept_from')} (same settings, code and data)")
    todo = [pair for pair in keys if pair not in results]
    base = load_params()
    threads = next(iter(params_of.values())).train.threads  # every point's (read_search)
    report = {"search": name, "model": model, "seeds": spec["seeds"], "points": spec["points"],
              "base": spec.get("base") or {}, "command": " ".join(["python -m pipeline.cli.search", *sys.argv[1:]]),
              "date": date.today().isoformat(), "machine": describe_machine(),
              "threads": threads}

    def save(complete: bool) -> None:  # after every training: a crash loses none that finished
        trials = [{"point": point, "seed": seed, "key": keys[point, seed], **{k: v for k, v in trial.items()
                   if k not in ("point", "seed", "key")}} for (point, seed), trial in results.items()]
        ranking = rank(spec, results) if complete else []
        report_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(report_file, {**report, "complete": complete, "ranking": ranking, "trials": trials})

    if todo:
        train, dev = read_split("train"), read_split("dev")
        vocabularies: dict[str, Vocabulary] = {}
        for point, _ in todo:
            if (key := vocabulary_key(params_of[point])) not in vocabularies:
                vocabularies[key] = build_vocabulary(params_of[point], train)
                check_known_tags(dev, set(vocabularies[key].tags), split_source("dev"))
    open_experiment(SEARCH_EXPERIMENT)
    where = cluster.connect(base.cluster) if todo else None
    try:
        with runs.search_run(name, model, spec) as parent:
            if todo:
                print(f"search {name}: {model}, {len(todo)} trainings on {where.describe()}, "
                      f"{threads} thread(s) each")
                report["cluster"] = where.describe()
                train_ref, dev_ref = cluster.put(train), cluster.put(dev)
                vocabulary_refs = {key: cluster.put(vocabulary) for key, vocabulary in vocabularies.items()}
                calls = [(f"{point} seed {seed}", (model, seed, params_of[point], train_ref, dev_ref,
                                                   vocabulary_refs[vocabulary_key(params_of[point])],
                                                   keys[point, seed]))
                         for point, seed in todo]
                progress = StageProgress("search", len(todo))
                for label, pair in cluster.run_tasks(train_pair, calls, threads, where,
                                                     base.cluster.max_retries, on_progress=progress.epoch):
                    point, seed = todo[[f"{p} seed {s}" for p, s in todo].index(label)]
                    best = max(pair.history, key=lambda row: row["dev_f1"])
                    run_id = runs.log_search_trial(parent, point, seed, params_of[point], model, pair)
                    results[point, seed] = {"seed": seed, "best_dev_f1": best["dev_f1"], "best_epoch": best["epoch"],
                                            "train_seconds": pair.seconds, "mlflow_run_id": run_id,
                                            # per epoch: what a shorter schedule would have given (the frontier)
                                            "history": [{key: round(row[key], 3) for key in ("epoch", "dev_f1",
                                                                                              "seconds")}
                                                        for row in pair.history]}
                    save(complete=False)
                    progress.finished(label, pair.output, f"dev F1 {best['dev_f1']:.2f} (epoch "
                                      f"{best['epoch']}, {pair.seconds:.0f} s)")
                progress.close()
            ranking = rank(spec, results)
            runs.log_search_ranking(parent, ranking)
    finally:
        if where:
            cluster.shutdown()
    save(complete=True)
    print(json.dumps({"search": name, "best": ranking[0]["point"], "dev_f1_mean": ranking[0]["dev_f1_mean"]}))


if __name__ == "__main__":
    main()
