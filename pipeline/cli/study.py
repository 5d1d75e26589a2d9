"""`python -m pipeline.cli.study studies/<name>.yaml`: the same comparison over several datasets.

Each setting of the study file is the whole pipeline (download, vocabularies, every tagger and
seed, evaluation on test) run as one DVC experiment, `<study>-<setting>`, with params.yaml
changed by the study's `base`, the setting's recipe and the setting's own changes (dotted keys, as
`dvc exp run -S` takes them):

    models: [baseline, char_cnn]           # taggers of params.yaml that every setting trains
    compare: [[baseline, char_cnn]]        # the pairs whose gain is reported
    seeds: [42, 43, 44]
    split: test                            # where the table's F1 and gains are read
    recipes:                               # chosen on dev, one per setting of the word vectors
      glove: {}
      random_init: {model.word_vectors: none, model.word_dim: 100}
    settings:                              # name -> a recipe and the changes that make the dataset
      conll2003-glove: {recipe: glove}
      wikiann-de: {recipe: random_init, data.dataset: wikiann, data.language: de}

The experiments run one after another, each in a temporary copy of the repository (`dvc exp run
--temp`, as the quick run), its trainings spread over Ray as the train stage spreads them (local
Ray, or the cluster at RAY_ADDRESS). A setting whose experiment already exists with the same
params (from this or an earlier commit) is kept, so an interrupted study resumes; the code it ran
is not compared, so after changing the pipeline's code, --rerun runs them all again. --queue only queues the missing ones (`dvc exp run --queue`): start them with
`dvc queue start -j N`, then run the study again to report.

Then the study reads each experiment's reports/metrics.json from git and writes
reports/study/<study>.json (every figure), .md (the tables and the answer) and .png (the
figure), and logs one MLflow summary run (experiment `ner-study`) whose description answers
"where do characters help most?". Each setting's experiment stays in `dvc exp show` and its runs
in the MLflow UI (tag `dvc_experiment`), side by side with the others.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="the study file (studies/<name>.yaml)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--queue", action="store_true",
                      help="queue the missing settings as DVC experiments instead of running them")
    what.add_argument("--report", action="store_true",
                      help="run nothing: report from the settings' finished experiments")
    what.add_argument("--rerun", action="store_true", help="run every setting again, even those already run")
    return parser


if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    build_parser().parse_args()

import yaml

from pipeline.errors import PipelineError, exits_cleanly
from pipeline.evaluation.study import answer, oov_table, results_table, setting_row, study_figure
from pipeline.files import all_or_none, write_json_atomic, write_text_atomic
from pipeline.layout import PARAMS_FILE, REPORTS_DIR, project_root
from pipeline.machine import describe_machine
from pipeline.params import Params, load_params, read_yaml, validate
from pipeline.tracking.runs import log_study

STUDY_KEYS = {"models", "compare", "seeds", "split", "base", "recipes", "settings"}
# params that say where and how fast, not what: an experiment that differs only there is the same
SAME_RESULTS_EXCLUDE = {"data": {"source"}, "cluster": True, "mlflow": True}


def read_study(path: Path) -> dict:
    """The study file, checked: every setting's params load, so a typo fails before any training."""
    spec = read_yaml(path)
    if not isinstance(spec, dict) or not {"models", "compare", "settings"} <= spec.keys() or spec.keys() - STUDY_KEYS:
        raise PipelineError(f"{path}: expected the keys models, compare, settings and optionally seeds, split, "
                            f"base, recipes (got {', '.join(spec) if isinstance(spec, dict) else type(spec).__name__})")
    spec.setdefault("split", "test")
    spec.setdefault("base", {})
    spec.setdefault("recipes", {})
    defaults = load_params()
    spec.setdefault("seeds", defaults.train.seeds)
    unknown = [name for name in spec["models"] if name not in defaults.models]
    if not isinstance(spec["models"], list) or len(spec["models"]) < 2 or unknown:
        raise PipelineError(f"{path}: models: expected two or more of params.yaml's models "
                            f"({', '.join(defaults.models)})" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    if not isinstance(spec["settings"], dict) or not spec["settings"]:
        raise PipelineError(f"{path}: settings: expected at least one `name: {{recipe: ..., key: value, ...}}`")
    for setting, changes in spec["settings"].items():
        if not isinstance(changes, dict) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(setting)):
            raise PipelineError(f"{path}: settings.{setting}: expected a name of letters, digits, '-', '_' or '.' "
                                "and a mapping of dotted params keys to values")
        if changes.get("recipe") not in spec["recipes"]:
            raise PipelineError(f"{path}: settings.{setting}.recipe: {changes.get('recipe')!r} is not one of recipes "
                                f"({', '.join(spec['recipes']) or 'none defined'})")
        check_overrides(spec, setting, setting_params(spec, setting, path), path)
    return spec


def check_overrides(spec: dict, setting: str, expected: Params, path: Path) -> None:
    """The setting's `-S` arguments, applied to a copy of params.yaml by DVC's own parser (Hydra's
    grammar, as `dvc exp run` applies them), must give exactly the params checked above: a value
    Hydra would read otherwise (a quote, a comma, a word such as `null`) fails here, not as an
    experiment that ran with something else."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / PARAMS_FILE.name
        shutil.copyfile(PARAMS_FILE, copy)
        try:
            apply_overrides(copy, overrides(spec, setting))
        except InvalidArgumentError as error:
            raise PipelineError(f"{path}: settings.{setting}: `dvc exp run -S` cannot read it "
                                f"({error.__cause__ or error}); quote the value in the study file") from None
        try:
            applied = load_params(copy)
        except PipelineError as error:
            raise PipelineError(f"{path}: settings.{setting}: `dvc exp run -S` would read it differently "
                                f"({str(error).removeprefix(f'{copy}: ')}); quote the value in the study file") from None
    if applied != expected:
        differ = [key for key, value in expected.model_dump().items() if applied.model_dump()[key] != value]
        raise PipelineError(f"{path}: settings.{setting}: `dvc exp run -S` would read it differently "
                            f"(params {', '.join(differ)}); quote the value in the study file")


def setting_changes(spec: dict, setting: str) -> dict:
    """Every params change of one setting, in order: the study's own (models, pairs, seeds), its base,
    the setting's recipe, the setting's changes."""
    own = {key: value for key, value in spec["settings"][setting].items() if key != "recipe"}
    return {"compare": spec["compare"], "train.seeds": spec["seeds"], **spec["base"],
            **spec["recipes"][spec["settings"][setting]["recipe"]], **own}


def setting_params(spec: dict, setting: str, path: Path) -> Params:
    defaults = read_yaml(PARAMS_FILE)
    models = {name: defaults["models"][name] for name in spec["models"]}
    try:
        return load_params(changes={"models": models, **setting_changes(spec, setting)})
    except PipelineError as error:
        raise PipelineError(f"{path}: settings.{setting}: {error}") from None


def hydra_value(value) -> str:
    """A params value in the override syntax of `dvc exp run -S` (Hydra's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w\-./]*", text) and text.lower() not in {"null", "true", "false", "nan", "inf"}:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def overrides(spec: dict, setting: str) -> list[str]:
    """The setting as `dvc exp run -S` arguments: the taggers it leaves out, then every change."""
    left_out = [f"~models.{name}" for name in read_yaml(PARAMS_FILE)["models"] if name not in spec["models"]]
    return [*left_out, *(f"{key}={hydra_value(value)}" for key, value in setting_changes(spec, setting).items())]


def experiment_name(study: str, setting: str) -> str:
    return f"{study}-{setting}"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, check=True).stdout


def finished_experiments() -> dict[str, list[str]]:
    """Every DVC experiment of the repository (any baseline commit): name -> commits, newest first."""
    found: dict[str, list[str]] = {}
    listing = git("for-each-ref", "--sort=-committerdate", "--format=%(objectname) %(refname)", "refs/exps/")
    for line in listing.splitlines():
        commit, ref = line.split(" ", 1)
        if ref.count("/") >= 4 and not ref.startswith(("refs/exps/celery", "refs/exps/exec", "refs/exps/runs")):
            found.setdefault(ref.rsplit("/", 1)[1], []).append(commit)
    return found


def same_results(expected: Params, commit: str) -> bool:
    """Whether the experiment at `commit` ran with `expected`'s params (where the data came from and
    where the trainings ran aside) and finished its evaluation."""
    try:
        ran = validate(yaml.safe_load(git("show", f"{commit}:{PARAMS_FILE.name}")), PARAMS_FILE.name)
        git("cat-file", "-e", f"{commit}:reports/metrics.json")
    except (subprocess.CalledProcessError, PipelineError, yaml.YAMLError):
        return False
    return ran.model_dump(exclude=SAME_RESULTS_EXCLUDE) == expected.model_dump(exclude=SAME_RESULTS_EXCLUDE)


def find_experiment(name: str, expected: Params, experiments: dict[str, list[str]]) -> str | None:
    return next((commit for commit in experiments.get(name, []) if same_results(expected, commit)), None)


def run_experiment(name: str, arguments: list[str], queue: bool) -> int:
    command = [sys.executable, "-m", "dvc", "exp", "run", "--queue" if queue else "--temp", "--name", name,
               *(part for argument in arguments for part in ("-S", argument))]
    print(f"study: {'queue' if queue else 'run'} {name}: dvc exp run {' '.join(command[5:])}", flush=True)
    return subprocess.run(command, cwd=project_root()).returncode


def report_study(name: str, spec: dict, commits: dict[str, str], seconds: dict[str, float], path: Path) -> Path:
    """The study's report, tables, figure and MLflow summary run, from the settings' experiments."""
    split, comparisons = spec["split"], spec["compare"]
    rows = []
    for setting, commit in commits.items():
        metrics = json.loads(git("show", f"{commit}:reports/metrics.json"))
        row = setting_row(setting, metrics, comparisons, split)
        rows.append({**row, "experiment": experiment_name(name, setting), "commit": commit,
                     "recipe": spec["settings"][setting]["recipe"], "changes": setting_changes(spec, setting),
                     "experiment_seconds": seconds.get(setting)})
    folder = REPORTS_DIR / "study"
    text = answer(rows, comparisons[0], split)
    markdown = (f"# Study {name}: {', '.join(spec['models'])} over {len(rows)} settings, seeds "
                f"{', '.join(map(str, spec['seeds']))}\n\n{text}\n\n{results_table(rows, comparisons, split)}\n\n"
                f"By word category ({split}; Ma & Hovy 2016):\n\n{oov_table(rows, comparisons[0], split)}\n\n"
                f"Made by `python -m pipeline.cli.study {path}`; each setting is the DVC experiment named in "
                f"{name}.json.\n")
    report = {"study": name, "file": str(path), "split": split, "compare": comparisons, "seeds": spec["seeds"],
              "machine": describe_machine(), "answer": text, "settings": rows}
    files = [folder / f"{name}.json", folder / f"{name}.md", folder / f"{name}.png"]
    with all_or_none():
        write_json_atomic(files[0], report)
        write_text_atomic(files[1], markdown)
        study_figure(rows, comparisons, split, files[2])
    log_study(name, spec, report, f"{text}\n\n{results_table(rows, comparisons, split)}", files)
    return files[1]


def earlier_seconds(report_file: Path, commits: dict[str, str]) -> dict[str, float]:
    """Wall times an earlier report measured for experiments that are kept (the same commit)."""
    try:
        earlier = json.loads(report_file.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {row["setting"]: row["experiment_seconds"] for row in earlier
            if commits.get(row["setting"]) == row.get("commit") and row.get("experiment_seconds")}


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    spec = read_study(args.study)
    name = args.study.stem
    expected = {setting: setting_params(spec, setting, args.study) for setting in spec["settings"]}
    experiments = finished_experiments()
    commits = {} if args.rerun else {setting: commit for setting in spec["settings"]
                                     if (commit := find_experiment(experiment_name(name, setting), expected[setting],
                                                                   experiments))}
    seconds = earlier_seconds(REPORTS_DIR / "study" / f"{name}.json", commits)
    missing = [setting for setting in spec["settings"] if setting not in commits]
    for setting in commits:
        print(f"study: {experiment_name(name, setting)}: kept (experiment {commits[setting][:7]}, the same params)")
    if missing and args.report:
        raise PipelineError(f"{args.study}: no finished experiment for {', '.join(missing)}; run them with "
                            f"`python -m pipeline.cli.study {args.study}`")
    for number, setting in enumerate(missing, 1):
        started = time.monotonic()
        print(f"study: setting {number} of {len(missing)} to {'queue' if args.queue else 'run'}", flush=True)
        code = run_experiment(experiment_name(name, setting), overrides(spec, setting), queue=args.queue)
        if code != 0:
            raise PipelineError(f"{args.study}: settings.{setting}: its experiment {experiment_name(name, setting)} failed "
                                "(the error above); the settings that finished are kept when the study runs again")
        if not args.queue:
            seconds[setting] = round(time.monotonic() - started, 1)
            experiments = finished_experiments()
            commit = find_experiment(experiment_name(name, setting), expected[setting], experiments)
            if commit is None:
                raise PipelineError(f"{args.study}: settings.{setting}: the experiment finished but "
                                    f"{experiment_name(name, setting)} is not among `dvc exp show`'s experiments")
            commits[setting] = commit
            print(f"study: {experiment_name(name, setting)} done in {seconds[setting] / 60:.0f} min", flush=True)
    if args.queue:
        print(f"study: {len(missing)} experiment(s) queued; start them with `dvc queue start -j N`, then report with "
              f"`python -m pipeline.cli.study {args.study}` when `dvc queue status` shows them done")
        return
    ordered = {setting: commits[setting] for setting in spec["settings"]}
    markdown = report_study(name, spec, ordered, seconds, args.study)
    print(markdown.read_text().split("\n\n")[1])
    print(f"study: {markdown} and {markdown.with_suffix('.png')}; MLflow: experiment ner-study, run study-{name}")


if __name__ == "__main__":
    main()
