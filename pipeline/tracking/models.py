"""The tagger as an MLflow model: the pyfunc model `tagger` (raw text in; tokens, tags and
entity spans out) whose artifacts hold the Keras file and its frozen word rows, logged by
`evaluate` on the training run of each model's best seed on dev (the one `Tagger.load` picks in
models/<name>; the other seeds' taggers stay in DVC only, so a run does not store the 38 MB of
frozen rows nine times); the model registry's names and the champion/challenger aliases; and
fetching a model by its URI."""
from __future__ import annotations

import contextlib
import io
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from pipeline.errors import PipelineError
from pipeline.evaluation.scoring import Evaluation
from pipeline.model.trained import FROZEN_ROWS_FILE, TAGGER_FILE
from pipeline.tracking.store import SUMMARY_RUN, check_server, room_for_artifacts, tracking_uri

EXAMPLES = ["Peter Blackburn lives in Berlin and works for the European Commission.",
            "EU rejects German call to boycott British lamb."]


def registered_name(model: str) -> str:
    """The model registry name of a tagger: ner-baseline, ner-char-cnn, ..."""
    return "ner-" + model.replace("_", "-")


# MLflow warns on stderr, as it creates the class, that `predict` has no type hints (it turns the
# warning filter back on for that), on every command that imports this module: the signature is
# inferred from examples instead (log_tagger), so the notice is noise
with contextlib.redirect_stderr(io.StringIO()):
    class TaggerModel(mlflow.pyfunc.PythonModel):
        """The tagger as an MLflow pyfunc model: a column `text` of raw sentences in; per sentence the
        tokens, tags and entity spans out (the Python API's structures). Served with
        `mlflow models serve -m <uri> --env-manager local`."""

        def load_context(self, context):
            from pipeline.model.tagger import Tagger
            self.tagger = Tagger.from_file(context.artifacts["tagger"], context.artifacts.get("frozen_rows"))

        def predict(self, context, model_input, params=None):
            texts = model_input["text"].tolist() if isinstance(model_input, pd.DataFrame) else list(model_input)
            # a missing value (None, NaN) is no text: it comes back skipped, not tagged as the word "nan"
            return [result.to_dict() for result in self.tagger.tag(["" if is_missing(text) else str(text)
                                                                     for text in texts])]


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


TAGGER_LOGGED = "tagger"  # run tag: the run holds the pyfunc model `tagger`


def best_seed(evaluation: Evaluation, model: str) -> int:
    seeds = evaluation.metrics[model]["dev"]["seeds"]["per_seed"]
    return max(evaluation.seeds, key=lambda seed: seeds[str(seed)])


def log_best_taggers(evaluation: Evaluation, runs: dict[tuple[str, int], mlflow.entities.Run], register: bool
                     ) -> None:
    """Log each model's best seed on dev as the pyfunc model `tagger` of its training run (and
    register it if asked), unless that run already holds it."""
    client = mlflow.MlflowClient()
    for model in evaluation.models:
        seed = best_seed(evaluation, model)
        run = runs.get((model, seed))
        if run is None or run.data.tags.get(TAGGER_LOGGED) == "logged":
            continue
        folder = next(trained.folder for trained in evaluation.runs[model] if trained.seed == seed)
        with mlflow.start_run(run_id=run.info.run_id):
            log_tagger(folder / TAGGER_FILE, model, register)
            mlflow.set_tag(TAGGER_LOGGED, "logged")
        # reopening moved the run's end to now: the runs table's Duration is the training's
        client.set_terminated(run.info.run_id, end_time=run.info.end_time)


def log_tagger(tagger_file: Path, model: str, register: bool) -> None:
    """Log the tagger (and its frozen word rows) as the pyfunc model "tagger" of the active run
    (and register it if asked)."""
    import pipeline
    from pipeline.model.tagger import Tagger

    # by the installed distributions' metadata: importing TensorFlow for its version costs seconds
    # (the model loads without it; a tagger with GRU cells is tagged by its Keras graph)
    tensorflow = [f"tensorflow=={version(name)}" for name in ("tensorflow", "tensorflow-cpu") if installed(name)][:1]
    requirements = [*tensorflow, *(f"{name}=={version(name)}" for name in ("keras", "h5py", "mlflow", "seqeval"))]
    examples = pd.DataFrame({"text": EXAMPLES})
    outputs = [result.to_dict() for result in Tagger.from_file(tagger_file).tag(EXAMPLES)]
    with room_for_artifacts("logging the tagger to MLflow"):
        mlflow.pyfunc.log_model(
            name="tagger", python_model=TaggerModel(), artifacts=tagger_artifacts(tagger_file),
            code_paths=[str(Path(pipeline.__file__).parent)], signature=infer_signature(examples, outputs),
            input_example=examples, pip_requirements=requirements,
            registered_model_name=registered_name(model) if register else None)


def installed(distribution: str) -> bool:
    try:
        return bool(version(distribution))
    except PackageNotFoundError:
        return False


def tagger_artifacts(tagger_file: Path) -> dict[str, str]:
    frozen = tagger_file.parent / FROZEN_ROWS_FILE
    return {"tagger": str(tagger_file), **({"frozen_rows": str(frozen)} if frozen.is_file() else {})}


def download_model(uri: str) -> Path:
    """The local folder of an MLflow model URI (runs:/..., models:/...), from the project's store."""
    check_server(tracking_uri())
    mlflow.set_tracking_uri(tracking_uri())
    try:
        return Path(mlflow.artifacts.download_artifacts(uri))
    except (MlflowException, OSError) as error:
        raise PipelineError(f"{uri}: cannot load the MLflow model ({error})") from None


def set_aliases(evaluation: Evaluation, runs: dict[tuple[str, int], mlflow.entities.Run], summary_link: str) -> None:
    """In the model registry, alias `champion` the version of the best tagger on dev (mean dev F1
    over seeds) and `challenger` those of the others; each alias points at the model's best seed
    on dev. Models that are not registered (mlflow.register: false) are skipped."""
    client, metrics = mlflow.MlflowClient(), evaluation.metrics
    ranking = sorted(evaluation.models, key=lambda model: -metrics[model]["dev"]["f1"])
    for rank, model in enumerate(ranking):
        seed = best_seed(evaluation, model)
        run = runs.get((model, seed))
        name = registered_name(model)
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'") if run else []
        if not versions:
            continue
        alias, other = ("champion", "challenger") if rank == 0 else ("challenger", "champion")
        client.set_registered_model_alias(name, alias, versions[0].version)
        if other in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, other)
        client.update_registered_model(name, description=(
            f"Tagger `{model}`: `{alias}` of the last evaluation ({rank + 1} of {len(ranking)} by mean dev F1, "
            f"{metrics[model]['dev']['f1']:.2f}). The alias points at version {versions[0].version}, seed {seed}, "
            f"the best seed on dev. Scores and gains: [{SUMMARY_RUN} run]({summary_link})."))
