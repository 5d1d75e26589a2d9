"""The data splits as MLflow run inputs: each split a dataset named after the corpus, with the
SHA-256 that `download` checked and its public URL (or the custom file) as its source."""
from __future__ import annotations

import json

import mlflow
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from pipeline.data.datasets import dataset_files, is_url
from pipeline.layout import MANIFEST_FILE
from pipeline.params import DataParams

SPLIT_CONTEXTS = {"train": "training", "dev": "validation"}  # the others: "evaluation"


def split_dataset(split: str, data: DataParams) -> mlflow.data.meta_dataset.MetaDataset:
    """A split as an MLflow dataset: `<dataset>/<split>` (with `[:N]` under data.limit), the digest
    the start of the SHA-256 that `download` checked (the full one is the input's `sha256` tag), the
    source its public URL (or the custom file)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    location = data.files[split] if data.dataset == "custom" else dataset_files(data.dataset, data.language)[split].url
    source = HTTPDatasetSource(location) if is_url(location) else LocalArtifactDatasetSource(location)
    name = f"{data.name}/{split}" + (f"[:{data.limit_of(split)}]" if data.limit_of(split) else "")
    return MetaDataset(source, name=name, digest=split_manifest(split)["sha256"][:DIGEST_CHARS])


DIGEST_CHARS = 12  # MLflow keeps at most 36 characters of a digest


def split_manifest(split: str) -> dict:
    return json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))[split]


def dataset_inputs(splits: list[str], data: DataParams) -> list[DatasetInput]:
    """The splits as run inputs (train: training, dev: validation, the others: evaluation)."""
    return [DatasetInput(split_dataset(split, data)._to_mlflow_entity(),
                         [InputTag(MLFLOW_DATASET_CONTEXT, SPLIT_CONTEXTS.get(split, "evaluation")),
                          InputTag("sha256", split_manifest(split)["sha256"]), InputTag("split", split)])
            for split in splits]
