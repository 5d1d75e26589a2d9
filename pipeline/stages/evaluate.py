"""Stage `evaluate`: every trained (model, seed) on dev, test and test_pp, the gains of the pairs
in `compare`, and where they come from -> reports/metrics.json, reports/comparison.md,
reports/examples.md, plot data and figures, and the MLflow runs (see pipeline/evaluation/scoring.py and
pipeline/evaluation/breakdown.py for what is computed)."""
from __future__ import annotations

from pipeline.stages.arguments import parse_stage_args

if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below (seconds)
    parse_stage_args("evaluate")

from pipeline.data.corpus import available_splits, read_split, split_source
from pipeline.data.lexicon import Lexicon
from pipeline.data.vocabulary import load_vocabulary
from pipeline.errors import exits_cleanly
from pipeline.evaluation.breakdown import break_down
from pipeline.evaluation.plots import make_figures
from pipeline.evaluation.report import comparison_markdown, examples_markdown, write_plot_data
from pipeline.evaluation.scoring import evaluate, rounded
from pipeline.files import all_or_none, write_json_atomic, write_text_atomic
from pipeline.layout import COMPARISON_FILE, EXAMPLES_FILE, METRICS_FILE
from pipeline.model.trained import load_trained
from pipeline.params import SPLITS, load_params
from pipeline.progress import native_stderr_to_log
from pipeline.tracking.experiment import open_experiment
from pipeline.tracking.scores import log_evaluation

EVAL_SPLITS = tuple(split for split in SPLITS if split != "train")


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("evaluate", argv)
    native_stderr_to_log("evaluate")
    params = load_params()
    open_experiment()  # a tracking server that is down stops the stage now, not after the scoring
    runs = {name: [load_trained(name, seed) for seed in params.train.seeds] for name in params.models}
    splits = available_splits(EVAL_SPLITS)
    data = {split: read_split(split) for split in splits}
    result = evaluate(runs, data, params.compare, params.evaluate, {s: split_source(s) for s in splits})
    vocabulary = load_vocabulary(params.model.word_vectors, params.model.word_dim)
    lexicon = Lexicon.of_run(read_split("train"), vocabulary.words, vocabulary.word_vectors, params.vocab.lowercase)
    breakdown = break_down(result, data, lexicon, params.evaluate)
    result.metrics["breakdown"] = rounded({"word_categories": list(breakdown.categories), **breakdown.metrics})
    with all_or_none():  # the reports describe one evaluation: a failure (a full disk) leaves the previous set
        write_json_atomic(METRICS_FILE, result.metrics)
        write_plot_data(result)
        figures = make_figures(result)
        write_text_atomic(COMPARISON_FILE, comparison_markdown(result))
        write_text_atomic(EXAMPLES_FILE, examples_markdown(breakdown.examples))
    log_evaluation(result, figures, [METRICS_FILE, COMPARISON_FILE, EXAMPLES_FILE], params.data,
                   params.mlflow.register)


if __name__ == "__main__":
    main()
