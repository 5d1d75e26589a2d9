"""The tagger as an MLflow pyfunc model: a column `text` of raw sentences in; per sentence the
tokens, tags and entity spans out (the same structures as the Python API). Served with
`mlflow models serve -m <uri> --env-manager local`."""
from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature

import pipeline

REGISTERED_NAMES = {"baseline": "ner-baseline", "char_cnn": "ner-char-cnn"}
EXAMPLES = ["Peter Blackburn lives in Berlin and works for the European Commission.",
            "EU rejects German call to boycott British lamb."]


class TaggerModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pipeline.tagger import Tagger
        self.tagger = Tagger.from_file(context.artifacts["tagger"])

    def predict(self, context, model_input, params=None):
        texts = model_input["text"].tolist() if isinstance(model_input, pd.DataFrame) else list(model_input)
        return [result.to_dict() for result in self.tagger.tag([str(text) for text in texts])]


def log_tagger_model(tagger_file: Path, model_name: str, register: bool, pip_requirements: list[str]) -> None:
    """Log the tagger as a pyfunc model named "tagger" in the active run (and register it if asked)."""
    from pipeline.tagger import Tagger
    examples = pd.DataFrame({"text": EXAMPLES})
    outputs = [result.to_dict() for result in Tagger.from_file(tagger_file).tag(EXAMPLES)]
    mlflow.pyfunc.log_model(
        name="tagger", python_model=TaggerModel(), artifacts={"tagger": str(tagger_file)},
        code_paths=[str(Path(pipeline.__file__).parent)], signature=infer_signature(examples, outputs),
        input_example=examples, pip_requirements=pip_requirements,
        registered_model_name=REGISTERED_NAMES[model_name] if register else None)
