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


# WikiANN (Pan et al. 2017) in the balanced train/dev/test splits of Rahimi et al. (2019), as the
# NER-datasets repository publishes them: `lang:token<TAB>tag`, IOB2, PER/ORG/LOC
_WIKIANN = "https://raw.githubusercontent.com/davidsbatista/NER-datasets/db7ff3ca4ba1df39907f8bdc036a556fed5ecde7/WikiANN"
# the 41 languages of Rahimi et al. (2019)
WIKIANN_LANGUAGES = ("af", "ar", "bg", "bn", "bs", "ca", "cs", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr",
                     "he", "hi", "hr", "hu", "id", "it", "lt", "lv", "mk", "ms", "nl", "no", "pl", "pt", "ro", "ru",
                     "sk", "sl", "sq", "sv", "ta", "tl", "tr", "uk", "vi")
# the SHA-256 of the files this project has measured on; another language's files are fetched
# unchecked, and their SHA-256 is recorded in data/raw/manifest.json
WIKIANN_SHA256 = {
    "de": {"train": "3ce85fb69bf38dc62dae27e08884ed951424d2c8955636f11ad137b07fd9968d",
           "dev": "82e9136e6fd8b78170a4150277e084fd57555a251f45800ff196823febf6b837",
           "test": "f681708294c1620d54af2a7bf3a408e4c7e18b156ee1f08dca931bfb07c0723a"},
    "nl": {"train": "a3e020d205dc36a1b0e3a66e42c26306fee8cdff052b1c1e3860d070b8c71b79",
           "dev": "d91d1682d82f7eea901e06885a0cba6919cc6551cbf39fde4b684793027da3df",
           "test": "7c2d4ca86c44a5c9027acdea186eaca9239a46b747ba41e59e92b8d7f73cd63c"},
    "fr": {"train": "2acc675a8521d9e49da87ad17de158bc8860f227559d71a766ffea253ebcee3a",
           "dev": "d970aa72d52889c3dca8ee455ce451b948f4bacc3c6a5dbf4b700b375e90e56e",
           "test": "d553810a89994583011afd1f7357c329648d4f112dc21734e5b5b2d8a069a7b5"},
}


def wikiann_files(language: str) -> dict[str, RemoteFile]:
    pinned = WIKIANN_SHA256.get(language, {})
    return {split: RemoteFile(f"{_WIKIANN}/{language}/{split}", pinned.get(split), f"wikiann/{language}/{split}")
            for split in ("train", "dev", "test")}


def dataset_files(dataset: str, language: str | None = None) -> dict[str, RemoteFile]:
    """The published files of a named dataset (wikiann: of one language), by split."""
    return wikiann_files(language) if dataset == "wikiann" else DATASETS[dataset]


def is_url(location: str) -> bool:
    """A data location is a URL (http, https) or else a local path."""
    return urlparse(location).scheme in ("http", "https")
