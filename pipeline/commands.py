"""Every command of the project and its `--help`, and `ner`, the one console script over them.

The DVC stages take no options: what they read and write is in dvc.yaml, so their help text is
made from it (the params keys, inputs and outputs of the stage) and cannot drift from what DVC
runs. The tools (predict, search, ...) have options; each module builds its own parser with
`build_parser()`, which the documentation renders too.

    ner --help              the commands
    ner predict --model models/char_cnn < news.txt
    ner train               the same as `python -m pipeline.train` (which dvc.yaml calls)
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass

import yaml

from pipeline.layout import DVC_FILE


@dataclass(frozen=True)
class Command:
    module: str
    summary: str
    stage: bool = False  # a DVC stage: no options, help made from dvc.yaml


COMMANDS = {
    "check_params": Command("pipeline.check_params", "validate the whole of params.yaml", stage=True),
    "download": Command("pipeline.download", "fetch the dataset, check SHA-256, write data/raw", stage=True),
    "vocab": Command("pipeline.vocab", "build the word and tag vocabularies from train", stage=True),
    "char_vocab": Command("pipeline.char_vocab", "build the character vocabulary from train", stage=True),
    "train": Command("pipeline.train", "train every (model, seed) of params.yaml as Ray tasks", stage=True),
    "evaluate": Command("pipeline.evaluate", "score every tagger, the gains and where they come from",
                        stage=True),
    "quick": Command("pipeline.quick", "the char gain in minutes: a small dvc experiment (a demonstration)"),
    "predict": Command("pipeline.predict", "tag raw text, a CoNLL file or JSON Lines with a trained tagger"),
    "search": Command("pipeline.search", "a hyper-parameter search, ranked on dev"),
    "tracking-server": Command("pipeline.tracking_server", "run a team MLflow server on PostgreSQL"),
    "benchmark": Command("benchmarks.speed", "measure training and tagging speed -> reports/benchmark.json"),
    "scale-benchmark": Command("benchmarks.scale", "serial vs parallel trainings -> reports/scale.json"),
}


def module_docstring(module: str) -> str:
    """A module's docstring, read from its source: no import, so `--help` never loads TensorFlow."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as source:
        return ast.get_docstring(ast.parse(source.read())) or ""


def stage_io(stage: str) -> dict[str, list[str]]:
    """The params keys, inputs and outputs of `stage` as dvc.yaml declares them (empty lists when
    dvc.yaml is not at hand, e.g. the package installed without the repository)."""
    try:
        spec = yaml.safe_load(DVC_FILE.read_text(encoding="utf-8"))["stages"][stage]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {"params": [], "reads": [], "writes": []}

    def names(entries) -> list[str]:
        return [next(iter(entry)) if isinstance(entry, dict) else str(entry) for entry in entries or []]

    params = names(spec.get("params"))
    if stage == "check_params":
        params = ["every key"]
    return {"params": params,
            "reads": [dep for dep in names(spec.get("deps")) if not dep.endswith(".py")],
            "writes": names(spec.get("outs")) + names(spec.get("metrics"))}


def stage_parser(stage: str) -> argparse.ArgumentParser:
    io = stage_io(stage)
    lines = [f"reads params.yaml: {', '.join(io['params']) or '-'}",
             f"reads files:       {', '.join(io['reads']) or '-'}",
             f"writes:            {', '.join(io['writes']) or 'nothing'}",
             "", f"DVC runs it as part of `dvc repro`; run it alone with `dvc repro {stage}`."]
    return argparse.ArgumentParser(prog=f"python -m pipeline.{stage}",
                                   description=module_docstring(COMMANDS[stage].module),
                                   epilog="\n".join(lines), formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_stage_args(stage: str, argv: list[str] | None = None) -> None:
    """A stage's command line: `--help` prints what it does and exits 0; anything else it does not
    take is a usage error (exit 2), before the stage does any work."""
    stage_parser(stage).parse_args(argv)


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
    command = COMMANDS[args.command]
    sys.argv = [f"ner {args.command}", *argv[1:]]
    importlib.import_module(command.module).main(argv[1:])


if __name__ == "__main__":
    main()
