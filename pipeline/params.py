"""params.yaml, validated: every key is required (params.yaml is the one source of defaults),
unknown keys and bad values stop the stage with a message naming the key.

The taggers are data: `models` names each variant and what it changes from the shared `model`
section (at least its char encoder), and `compare` lists the pairs whose gain is reported."""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.data.corpus import READERS
from pipeline.data.datasets import WIKIANN_LANGUAGES
from pipeline.data.word_vectors import DIMENSIONS
from pipeline.errors import PipelineError
from pipeline.layout import PARAMS_FILE

SPLITS = ("train", "dev", "test", "test_pp")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    dataset: Literal["conll2003", "wikiann", "custom"]
    # dataset wikiann only: which language (its tokens carry it as a prefix, `de:Berlin`)
    language: Optional[str] = None
    # "default": the dataset's public URLs; otherwise a local mirror folder (conll2003/train.txt, ...)
    source: str
    # only for dataset "custom": split name -> path or URL (train, dev and test are required)
    files: Optional[dict[Literal["train", "dev", "test", "test_pp"], str]] = None
    # the custom files' format (conll columns or jsonl); the public datasets are conll
    format: Literal[tuple(READERS)]
    limit: Optional[int] = Field(default=None, ge=1)
    train_limit: Optional[int] = Field(default=None, ge=1)  # train only: dev and test stay whole

    def limit_of(self, split: str) -> int | None:
        """How many sentences of `split` the pipeline keeps (None: all)."""
        limits = [n for n in (self.limit, self.train_limit if split == "train" else None) if n]
        return min(limits) if limits else None

    @model_validator(mode="after")
    def files_match_dataset(self):
        if self.dataset == "custom":
            missing = [s for s in ("train", "dev", "test") if not self.files or s not in self.files]
            if missing:
                raise ValueError(f"dataset 'custom' needs data.files.{missing[0]} (train, dev and test)")
        elif self.files:
            raise ValueError("data.files is only used with dataset 'custom'")
        if self.dataset != "custom" and self.format != "conll":
            raise ValueError(f"data.format: dataset {self.dataset!r} is conll, got {self.format!r}")
        if self.dataset == "wikiann" and self.language not in WIKIANN_LANGUAGES:
            raise ValueError(f"data.language: {self.language!r} is not a WikiANN language; the known ones are "
                             f"{', '.join(WIKIANN_LANGUAGES)}")
        if self.dataset != "wikiann" and self.language is not None:
            raise ValueError(f"data.language is only used with dataset 'wikiann' (dataset is {self.dataset!r})")
        return self

    @property
    def name(self) -> str:
        """The dataset as messages and MLflow name it: conll2003, wikiann-de, custom."""
        return f"wikiann-{self.language}" if self.dataset == "wikiann" else self.dataset


class VocabParams(Section):
    min_count: int = Field(ge=1)
    lowercase: bool
    # with model.word_vectors: the N most frequent pretrained words join the vocabulary even when
    # train lacks them (chosen by the vectors' own frequency order, never by dev or test)
    pretrained_words: int = Field(ge=0)


class CharVocabParams(Section):
    min_count: int = Field(ge=1)
    max_word_length: int = Field(ge=1)


CHAR_ENCODERS = ("none", "cnn", "lstm")
MODEL_NAME = r"^[a-z][a-z0-9_]*$"  # used in paths, DVC stage names and MLflow model names
RESERVED_NAMES = ("gains", "char_gain", "training")  # metrics.json's other top-level keys


class ModelParams(Section):
    """The settings the taggers share; each entry of `models` may override any of them."""
    word_vectors: Literal["none", "glove-6b-50d"]
    word_dim: int = Field(ge=1)
    casing: bool  # a per-token casing feature (Reimers & Gurevych 2017) beside the word embedding
    cell: Literal["simple", "gru", "lstm"]
    units: int = Field(ge=1)
    rnn_layers: int = Field(ge=1)  # stacked bidirectional RNN layers
    dropout: float = Field(ge=0, lt=1)
    # one dropout mask per sentence for the RNN's inputs and outputs, instead of one per number
    variational_dropout: bool
    char_dropout: float = Field(ge=0, lt=1)  # on the char embeddings, before the char encoder
    char_dim: int = Field(ge=1)
    char_filters: int = Field(ge=1)
    char_kernel_size: int = Field(ge=1)
    char_lstm_units: int = Field(ge=1)  # per direction of the char BiLSTM
    decoder: Literal["softmax", "crf"]
    # the tags the network learns and decodes; the tagger outputs (and is scored in) IOB2 either way
    tag_scheme: Literal["iob2", "bioes"]
    # training only: each word becomes the OOV word with this probability (Lample et al. 2016)
    word_dropout: float = Field(ge=0, lt=1)


class TaggerParams(ModelParams):
    """One tagger: the shared settings with its variant's changes."""
    char_encoder: Literal[CHAR_ENCODERS]


class TrainParams(Section):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal["adam", "sgd"]
    learning_rate: float = Field(gt=0, allow_inf_nan=False)
    momentum: float = Field(ge=0, lt=1)  # sgd only
    # epoch t (from 0) trains at: inverse_time, learning_rate / (1 + lr_decay * t) (lr_decay 0: constant);
    # linear, learning_rate * (1 - t / epochs), down to learning_rate / epochs in the last epoch
    lr_schedule: Literal["inverse_time", "linear"]
    lr_decay: float = Field(ge=0, allow_inf_nan=False)  # lr_schedule inverse_time only
    clipnorm: Optional[float] = Field(gt=0, allow_inf_nan=False)
    patience: int = Field(ge=1)
    # one training run per seed and model; the char gain is reported over seeds
    seeds: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    # TensorFlow threads (and Ray CPUs) per training: the float sums, so the last digits, follow it
    threads: int = Field(ge=1)

    @field_validator("seeds")
    @classmethod
    def seeds_are_unique(cls, seeds):
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def one_schedule(self):
        if self.lr_schedule == "linear" and self.lr_decay:
            raise ValueError(f"train.lr_decay: {self.lr_decay} is read by lr_schedule inverse_time only; set it "
                             "to 0 with lr_schedule linear (which decays to the last epoch by itself)")
        return self


class EvaluateParams(Section):
    bootstrap_resamples: int = Field(ge=1000)
    permutation_resamples: int = Field(ge=1000)
    seed: int = Field(ge=0)
    batch_size: int = Field(ge=1)


with warnings.catch_warnings():  # "register" also names ABCMeta.register, which pydantic warns about
    warnings.simplefilter("ignore", UserWarning)

    class MlflowParams(Section):
        register: bool  # also register each model's best seed on dev in the model registry (ner-<model name>)


class ClusterParams(Section):
    """Where the trainings run (see pipeline/training/cluster.py); not a DVC dependency: it changes how
    long a run takes, not its results (train.threads fixes the per-training arithmetic)."""
    # local Ray's size when RAY_ADDRESS is unset; null = every core of this machine
    local_cpus: Optional[int] = Field(ge=1)
    # GPUs each training asks for; auto = 1 where the cluster has GPUs, else 0
    gpus_per_task: Union[Literal["auto"], Annotated[float, Field(ge=0)]]
    # a training whose worker dies (killed, out of memory, node lost) is run again up to N times
    max_retries: int = Field(ge=0)


class Params(Section):
    data: DataParams
    vocab: VocabParams
    char_vocab: CharVocabParams
    model: ModelParams
    # tagger name -> what it changes from `model`: {char_encoder: none | cnn | lstm, ...}
    models: dict[Annotated[str, Field(pattern=MODEL_NAME)], dict[str, object]] = Field(min_length=1)
    # pairs [a, b] whose gain F1(b) - F1(a) is reported
    compare: list[Annotated[list[str], Field(min_length=2, max_length=2)]]
    train: TrainParams
    evaluate: EvaluateParams
    mlflow: MlflowParams
    cluster: ClusterParams

    def tagger(self, name: str) -> TaggerParams:
        """The settings of tagger `name`: `model` with the variant's changes."""
        return TaggerParams.model_validate({**self.model.model_dump(), **self.models[name]})

    @model_validator(mode="after")
    def variants_and_comparisons_fit(self):
        for name, variant in self.models.items():
            if name in RESERVED_NAMES:
                raise ValueError(f"models.{name}: the name is taken by a key of reports/metrics.json "
                                 f"({', '.join(RESERVED_NAMES)})")
            if "word_vectors" in variant:
                raise ValueError(f"models.{name}.word_vectors: set it in model.word_vectors: the vocab stage "
                                 "builds one vocabulary for every tagger")
            try:
                tagger = self.tagger(name)
            except ValidationError as error:
                item = error.errors()[0]
                key = ".".join(str(part) for part in item["loc"])
                raise ValueError(f"models.{name}.{key}: {item['msg']}") from None
            check_word_vectors(tagger, self.vocab, f"models.{name}." if "word_dim" in variant else "model.")
        for index, (a, b) in enumerate(self.compare):
            for model in (a, b):
                if model not in self.models:
                    raise ValueError(f"compare.{index}: {model!r} is not in models ({', '.join(self.models)})")
            if a == b:
                raise ValueError(f"compare.{index}: compares {a!r} with itself")
        kept = self.data.limit_of("train")
        if kept is not None and self.train.batch_size > kept:  # the whole training set would be one batch
            key = "data.train_limit" if kept == self.data.train_limit else "data.limit"
            raise ValueError(f"train.batch_size: {self.train.batch_size} is more than the {kept} train sentences "
                             f"that {key} keeps")
        return self


def check_word_vectors(tagger: ModelParams, vocab: VocabParams, prefix: str) -> None:
    vectors = tagger.word_vectors
    if vectors != "none":
        if tagger.word_dim != DIMENSIONS[vectors]:
            raise ValueError(f"{prefix}word_dim: must be {DIMENSIONS[vectors]} to hold the {vectors} vectors, "
                             f"got {tagger.word_dim}")
        if not vocab.lowercase:
            raise ValueError(f"vocab.lowercase: must be true with model.word_vectors {vectors} "
                             "(its words are lower-cased; casing reaches the model through model.casing "
                             "and the char encoder)")


INTERNAL_LOC = re.compile(r"function-|constrained-|literal\[")  # pydantic's own parts of an error's location


def load_params(path: str | os.PathLike = PARAMS_FILE, changes: dict[str, object] | None = None) -> Params:
    """params.yaml, validated; with `changes` ({"train.optimizer": "sgd", ...}, dotted keys as
    `dvc exp run -S` takes them) applied first, each key naming one that the file has."""
    raw = read_yaml(path)
    for key, value in (changes or {}).items():
        section, *parts = key.split(".")
        node = raw
        for part in [section, *parts][:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or [section, *parts][-1] not in node:
            raise PipelineError(f"{key}: no such key in {path}")
        node[[section, *parts][-1]] = value
    return validate(raw, path)


def read_yaml(path: str | os.PathLike):
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except yaml.MarkedYAMLError as error:  # one line: where, and what the parser expected
        mark = error.problem_mark
        raise PipelineError(f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {error.problem}"
                            + (f" ({error.context})" if error.context else "")) from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    return raw


def validate(raw, path: str | os.PathLike) -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as error:
        problems: dict[str, list[str]] = {}
        for item in error.errors():
            # drop pydantic's internal names (a validator's, a union branch's) and keep the params key;
            # a value that fits no branch of a union gets one problem listing what each branch wanted
            key = ".".join(str(part) for part in item["loc"] if not INTERNAL_LOC.match(str(part)))
            problems.setdefault(key, []).append(item["msg"].removeprefix("Value error, "))
        # a section's own check names its keys itself ("data.language: ..."): no "data: " before it
        raise PipelineError(f"{path}: " + "; ".join(
            f"{key}: {' or '.join(messages)}" if key and not messages[0].startswith(f"{key}.") else " or ".join(messages)
            for key, messages in problems.items())) from None


def env_seconds(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    """Network timeouts from the environment (README, Failure modes): NAME=seconds, or for
    (connect, read) pairs NAME=connect,read; unset: `default`."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != len(default) or not all(math.isfinite(value) and value > 0 for value in values):
        raise PipelineError(f"{name}={text!r}: expected {len(default)} positive number(s) of seconds, "
                            f"comma-separated (default {','.join(f'{value:g}' for value in default)})")
    return values
