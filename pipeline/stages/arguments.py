"""The command line of a DVC stage, and the argument types every command shares. The stages take
no options: what they read and write is in dvc.yaml, so their `--help` is made from it (the params
keys, inputs and outputs of the stage) and cannot drift from what DVC runs."""
from __future__ import annotations

import argparse
import ast
import importlib.util

import yaml

from pipeline.layout import DVC_FILE


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
            "reads": [dep for dep in names(spec.get("deps")) if not dep.startswith("pipeline/")],  # not its code
            "writes": names(spec.get("outs")) + names(spec.get("metrics"))}


def stage_parser(stage: str) -> argparse.ArgumentParser:
    io = stage_io(stage)
    lines = [f"reads params.yaml: {', '.join(io['params']) or '-'}",
             f"reads files:       {', '.join(io['reads']) or '-'}",
             f"writes:            {', '.join(io['writes']) or 'nothing'}",
             "", f"DVC runs it as part of `dvc repro`; run it alone with `dvc repro {stage}`."]
    return argparse.ArgumentParser(prog=f"python -m pipeline.stages.{stage}",
                                   description=module_docstring(f"pipeline.stages.{stage}"),
                                   epilog="\n".join(lines), formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_stage_args(stage: str, argv: list[str] | None = None) -> None:
    """A stage's command line: `--help` prints what it does and exits 0; anything else it does not
    take is a usage error (exit 2), before the stage does any work."""
    stage_parser(stage).parse_args(argv)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
