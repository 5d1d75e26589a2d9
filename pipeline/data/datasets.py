"""The datasets the pipeline knows by name (`data.dataset`): where each split is published and the
SHA-256 its bytes must have. `download` fetches them; MLflow names them as the runs' datasets."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str | None
    local_name: str  # its path inside a local mirror folder (data.source), as published


_DAVIDSBATISTA = "https://raw.githubusercontent.com/davidsbatista/NER-datasets/dcb6c7439a7de43abc2448bad5b1d81a47f26c0d/CONLL2003"
_CROSSWEIGH = "https://raw.githubusercontent.com/ZihanWangKi/CrossWeigh/77d0c2dbf1a039211426f0fecb11daabba8e7bd1/data"

DATASETS = {
    "conll2003": {
        "train": RemoteFile(f"{_DAVIDSBATISTA}/train.txt",
                            "c99b26852dabf57ca9d30a0e892b84544cc8962003151e14a71077c55dc66db5", "conll2003/train.txt"),
        "dev": RemoteFile(f"{_DAVIDSBATISTA}/valid.txt",
                          "f1f6469322876887de1d04acd43c59b02f59d5b02acf42c027132fa1bf349cb2", "conll2003/valid.txt"),
        "test": RemoteFile(f"{_DAVIDSBATISTA}/test.txt",
                           "82e0c72d262f86ad3e78b15c5d980bbf87cb205aa4bf6d2d97643f463f8d7ff7", "conll2003/test.txt"),
        # CoNLL++ (Wang et al. 2019): the CoNLL-2003 test set with about 5% of sentences' labels corrected
        "test_pp": RemoteFile(f"{_CROSSWEIGH}/conllpp_test.txt",
                              "4eb3b5114787d0df24087e9c9dfc956abf4cfd5e201bc1056b48ff4f7b37c0e8", "conllpp/conllpp_test.txt"),
    }
}


def is_url(location: str) -> bool:
    """A data location is a URL (http, https) or else a local path."""
    return urlparse(location).scheme in ("http", "https")
