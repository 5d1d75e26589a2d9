"""Where every file of the project lives: the one place that names paths.

Stages read and write only through these names, so moving a file is a change here (and in
dvc.yaml, which DVC needs spelled out). Paths are relative to the repository root, where DVC
runs every stage; `project_root()` is for what must be shared across DVC's temporary copies
(the MLflow store).
"""
from __future__ import annotations

import os
from pathlib import Path

PARAMS_FILE = Path("params.yaml")
DVC_FILE = Path("dvc.yaml")

# download: one normalized file per split (token<TAB>IOB2 tag, blank line between sentences)
RAW_DIR = Path("data/raw")
MANIFEST_FILE = RAW_DIR / "manifest.json"

# vocab, char_vocab
VOCAB_DIR = Path("data/vocab")
WORDS_FILE = VOCAB_DIR / "words.txt"
TAGS_FILE = VOCAB_DIR / "tags.txt"
VECTORS_FILE = VOCAB_DIR / "word_vectors.npy"  # one row per word of words.txt; (n, 0) without word vectors
VOCAB_STATS_FILE = VOCAB_DIR / "vocab_stats.json"
CHARS_FILE = VOCAB_DIR / "chars.txt"
CHAR_STATS_FILE = VOCAB_DIR / "char_stats.json"

# train: models/<model>/seed_<n>/{tagger.keras, history.csv, summary.json}
MODELS_DIR = Path("models")

# evaluate
REPORTS_DIR = Path("reports")
METRICS_FILE = REPORTS_DIR / "metrics.json"
COMPARISON_FILE = REPORTS_DIR / "comparison.md"
EXAMPLES_FILE = REPORTS_DIR / "examples.md"  # entities one model of a compared pair finds and the other misses
PLOTS_DIR = REPORTS_DIR / "plots"
FIGURES_DIR = REPORTS_DIR / "figures"
BENCHMARK_FILE = REPORTS_DIR / "benchmark.json"

# what long stages print, in full (not versioned)
LOGS_DIR = Path("logs")


def split_file(split: str) -> Path:
    return RAW_DIR / f"{split}.txt"


def model_folder(model: str) -> Path:
    return MODELS_DIR / model


def seed_folder(model: str, seed: int, root: Path = MODELS_DIR) -> Path:
    return root / model / f"seed_{seed}"


LEARNING_CURVES_CSV = PLOTS_DIR / "learning_curves.csv"  # one row per (model, epoch), for `dvc plots`
PER_TYPE_CSV = PLOTS_DIR / "per_type_f1.csv"  # one row per (model, entity type)


def project_root() -> Path:
    """The repository root. DVC sets DVC_ROOT for stage commands, and for queued experiments
    (which run in temporary copies) points it at the original repository; by hand, the stages
    run from the root."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def resolve_local(location: str) -> Path:
    """A relative local path from params.yaml is relative to the repository root."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else project_root() / path
