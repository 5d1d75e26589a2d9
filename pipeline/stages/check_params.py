"""Stage `check_params`: the whole of params.yaml, validated whenever the file changes.

Every stage validates all of params.yaml when it runs, but DVC reruns a stage only when a key it
reads changes, so a key that no stage reads (a misspelt section such as `trian:`) would leave
everything "up to date" and unnoticed. This stage depends on the file itself, so any edit runs it,
and it stops with the key's name."""
from __future__ import annotations

from pipeline.stages.arguments import parse_stage_args

if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    parse_stage_args("check_params")

from pipeline.errors import exits_cleanly
from pipeline.layout import PARAMS_FILE
from pipeline.params import load_params


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("check_params", argv)
    params = load_params()
    print(f"{PARAMS_FILE}: valid ({len(params.models)} taggers, {len(params.train.seeds)} seeds, "
          f"{len(params.compare)} comparisons)")


if __name__ == "__main__":
    main()
