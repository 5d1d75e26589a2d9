"""A reproducible NER pipeline measuring what character embeddings add to an RNN tagger.

`from pipeline import Tagger` gives the Python API (see pipeline/model/tagger.py).
"""
import contextlib
import importlib.abc
import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ notices out of stage logs


@contextlib.contextmanager
def _native_stderr_silenced():
    """C++ code writes to file descriptor 2 directly, past Python's sys.stderr."""
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no descriptor 2 at all (a detached process): nothing to silence
        yield
        return
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _native_stderr_silenced():
            self.loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow with its start-up lines silenced ("All log messages before
    absl::InitializeLog()", the oneDNN notice): absl prints them before TF_CPP_MIN_LOG_LEVEL
    applies. Errors still raise as Python exceptions."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def __getattr__(name):
    # imported lazily, so the stages that need no TensorFlow (download, vocab) start fast
    if name == "Tagger":
        from pipeline.model.tagger import Tagger
        return Tagger
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
