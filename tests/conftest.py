import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CoNLL-2003 / CoNLL++ files (never committed): ../shared/data, or $NER_SHARED_DATA."""
    folder = Path(os.environ.get("NER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
    if not (folder / "conll2003" / "train.txt").exists():
        pytest.fail(f"real CoNLL data not found in {folder}; set NER_SHARED_DATA to a folder laid out like "
                    "../shared/data")
    return folder


@pytest.fixture(scope="session")
def real_train(shared_data):
    from pipeline.corpus import read_corpus as read_conll
    return read_conll(shared_data / "conll2003" / "train.txt")


@pytest.fixture(scope="session")
def real_dev(shared_data):
    from pipeline.corpus import read_corpus as read_conll
    return read_conll(shared_data / "conll2003" / "valid.txt")
