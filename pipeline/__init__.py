"""A reproducible NER pipeline measuring what character embeddings add to an RNN tagger.

`from pipeline import Tagger` gives the Python API (see pipeline/tagger.py).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of stage logs


def __getattr__(name):
    # imported lazily, so the stages that need no TensorFlow (download, vocab) start fast
    if name == "Tagger":
        from pipeline.tagger import Tagger
        return Tagger
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
