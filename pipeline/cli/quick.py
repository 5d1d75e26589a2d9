"""The quick run: what the characters add, in under 3 minutes on 2 cores. A demonstration, not
the result (that is `dvc repro`: all of train, 30 epochs, 3 seeds, 3 taggers).

It runs the whole pipeline (download, vocabularies, training, evaluation) as one DVC experiment in
a temporary copy of the repository, with these changes to params.yaml:

    data.train_limit=3000                the first 3,000 of the 14,041 train sentences
    train.epochs=10                      at most 10 epochs
    train.batch_size=32                  small batches, as many updates as 10 epochs of 3,000
    train.learning_rate=0.002            sentences allow (the full run's batch of 128 would make
    train.patience=4                     only 240)
    train.seeds=[42]                     one seed
    ~models.char_lstm                    two taggers: baseline and char_cnn, trained at once
    compare=[[baseline,char_cnn]]
    evaluate.*_resamples=1000            1,000 bootstrap and permutation resamples

dev, test and test_pp stay whole, so the gain is measured on the full test set, with its
bootstrap interval and p-value. The experiment then shows in `dvc exp show` and in MLflow like
any other; params.yaml and the workspace are left as they were.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

CHANGES = ["data.train_limit=3000", "train.epochs=10", "train.batch_size=32", "train.learning_rate=0.002",
           "train.patience=4", "train.seeds=[42]", "~models.char_lstm",
           "compare=[[baseline,char_cnn]]", "evaluate.bootstrap_resamples=1000",
           "evaluate.permutation_resamples=1000"]


def dvc_command() -> list[str]:
    return ["dvc", "exp", "run", "--temp", *(part for change in CHANGES for part in ("-S", change))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli.quick", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the dvc command instead of running it")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command = dvc_command()
    print(shlex.join(command), flush=True)
    if args.print:
        return
    finished = subprocess.run([sys.executable, "-m", *command])
    if finished.returncode == 0:
        print("quick run: a demonstration on 3,000 train sentences, one seed; `dvc repro` gives the result "
              "(all of train, 3 seeds). Compare: `dvc exp show`, or the MLflow link above.")
    raise SystemExit(finished.returncode)


if __name__ == "__main__":
    main()
