"""Stage `download`: fetch the dataset's splits, verify SHA-256, write each split once in the
normalized form every later stage reads (data/raw/<split>.txt: token<TAB>IOB2 tag), with
`data.limit` and `data.train_limit` applied here and nowhere else (pipeline/data/download.py)."""
from __future__ import annotations

from pipeline.stages.arguments import parse_stage_args

if __name__ == "__main__":  # --help, or an argument it does not take, answered before the imports below
    parse_stage_args("download")

from pipeline.data.download import TIMEOUT, TIMEOUT_ENV, download
from pipeline.errors import exits_cleanly
from pipeline.params import env_seconds, load_params


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parse_stage_args("download", argv)
    params = load_params()
    download(params.data, timeout=env_seconds(TIMEOUT_ENV, TIMEOUT))


if __name__ == "__main__":
    main()
