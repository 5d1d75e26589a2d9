"""Every command of the project and its `--help`, and `ner`, the one console script over them.

The DVC stages take no options: what they read and write is in dvc.yaml, so their help text is
made from it (the params keys, inputs and outputs of the stage) and cannot drift from what DVC
runs. The tools (predict, search, ...) have options; each module builds its own parser with
`build_parser()`, which the documentation renders too.

    ner --help              the commands
    ner predict --model models/char_cnn < news.txt
    ner train               the same as `python -m pipeline.stages.train` (which dvc.yaml calls)
"""
from __future__ import annotations

import argparse
import importlib
import runpy
import sys
from dataclasses import dataclass

from pipeline.stages.arguments import stage_parser


@dataclass(frozen=True)
class Command:
    module: str
    summary: str
    stage: bool = False  # a DVC stage: no options, help made from dvc.yaml


COMMANDS = {
    "check_params": Command("pipeline.stages.check_params", "validate the whole of params.yaml", stage=True),
    "download": Command("pipeline.stages.download", "fetch the dataset, check SHA-256, write data/raw", stage=True),
    "vocab": Command("pipeline.stages.vocab", "build the word and tag vocabularies from train", stage=True),
    "char_vocab": Command("pipeline.stages.char_vocab", "build the character vocabulary from train", stage=True),
    "train": Command("pipeline.stages.train", "train every (model, seed) of params.yaml as Ray tasks", stage=True),
    "evaluate": Command("pipeline.stages.evaluate", "score every tagger, the gains and where they come from",
                        stage=True),
    "quick": Command("pipeline.cli.quick", "the char gain in minutes: a small dvc experiment (a demonstration)"),
    "predict": Command("pipeline.cli.predict", "tag raw text, a CoNLL file or JSON Lines with a trained tagger"),
    "search": Command("pipeline.cli.search", "a hyper-parameter search, ranked on dev"),
    "study": Command("pipeline.cli.study", "the same comparison over several datasets, one DVC experiment each"),
    "tracking-server": Command("pipeline.cli.tracking_server", "run a team MLflow server on PostgreSQL"),
    "benchmark": Command("benchmarks.speed", "measure training and tagging speed -> reports/benchmark.json"),
    "inference-benchmark": Command("benchmarks.inference",
                                   "the Keras graph against the NumPy forward pass -> reports/inference.json"),
    "scale-benchmark": Command("benchmarks.scale", "serial vs parallel trainings -> reports/scale.json"),
    "frontier": Command("benchmarks.frontier", "a search's speed-accuracy frontier and the recipe its rule picks"),
}


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of any command, for its help text (the tools' modules are imported)."""
    command = COMMANDS[name]
    if command.stage:
        return stage_parser(name)
    return importlib.import_module(command.module).build_parser()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="ner", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What character embeddings add to an RNN NER tagger: the project's commands.",
        epilog=f"commands:\n{listing}\n\n`ner <command> --help` says what a command reads and writes.")
    parser.add_argument("command", choices=COMMANDS, metavar="command", help="one of the commands below")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's own arguments")
    args = parser.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    # run as `python -m` runs it (its own sys.argv and __main__), so that its --help answers before
    # its imports (seconds) here too
    sys.argv = [sys.argv[0], *argv[1:]]
    runpy.run_module(COMMANDS[args.command].module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
