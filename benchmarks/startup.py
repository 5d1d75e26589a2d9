"""How long each command takes to answer `--help`: the wall and CPU seconds of `python -m <module>
--help`, for every command `ner` lists, the median of --rounds runs. With --revision, the same
commands of that git revision (a temporary worktree) run alternately with the working tree's, and
the report gives the ratios.

    python -m benchmarks.startup --revision HEAD~1     # about a minute

Writes reports/startup.json.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from benchmarks.speed import revision_tree  # (TensorFlow comes along: imported once, outside what is timed)
from pipeline.cli.ner import COMMANDS
from pipeline.errors import PipelineError, exits_cleanly
from pipeline.files import write_json_atomic
from pipeline.layout import REPORTS_DIR
from pipeline.machine import describe_machine
from pipeline.stages.arguments import positive_int

REPORT_FILE = REPORTS_DIR / "startup.json"


def answer_help(module: str, code: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `python -m module --help` run in `code`."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=code, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(code.resolve())})
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise PipelineError(f"python -m {module} --help failed in {code}: {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(times: list[tuple[float, float]]) -> dict | None:
    if not times:
        return None
    return {"seconds": round(statistics.median(t[0] for t in times), 2),
            "cpu_seconds": round(statistics.median(t[1] for t in times), 2)}


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=positive_int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--revision", help="also this git revision's commands, alternating, for ratios")
    parser.add_argument("--commands", help="comma-separated names of `ner`'s commands (default: all)")
    args = parser.parse_args(argv)
    names = args.commands.split(",") if args.commands else list(COMMANDS)
    unknown = [name for name in names if name not in COMMANDS]
    if unknown:
        raise PipelineError(f"--commands: {', '.join(unknown)} not among ner's commands ({', '.join(COMMANDS)})")
    with revision_tree(args.revision) if args.revision else nullcontext((None, None)) as (tree, commit):
        trees = {"now": Path("."), **({"revision": tree} if tree else {})}
        times = {name: {side: [] for side in trees} for name in names}
        for _ in range(args.rounds):
            for name in names:
                command = COMMANDS[name]
                for side, code in trees.items():
                    if (code / Path(*command.module.split("."))).with_suffix(".py").is_file():  # else: not there yet
                        times[name][side].append(answer_help(command.module, code))
    commands = {}
    for name, sides in times.items():
        row = {"module": COMMANDS[name].module, **medians(sides["now"])}
        if tree:
            row["revision"] = medians(sides["revision"])
            row["speedup"] = round(row["revision"]["seconds"] / row["seconds"], 1) if row["revision"] else None
        commands[name] = row
        print(f"{name:<20} {row['seconds']:6.2f} s" + (f"  (revision: {row['revision']['seconds']:.2f} s)"
                                                         if tree and row["revision"] else ""), flush=True)
    report = {"command": " ".join(["python -m benchmarks.startup", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": describe_machine(),
              "rounds": args.rounds, **({"revision": commit} if commit else {}), "commands": commands}
    write_json_atomic(Path(REPORT_FILE), report)


if __name__ == "__main__":
    main()
