import mlflow

from pipeline import tracking


def test_store_defaults_to_the_repo_root_and_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_experiment_created_by_a_parallel_worker_in_between_is_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    mlflow.set_tracking_uri(tracking.tracking_uri())
    existing = mlflow.create_experiment(tracking.EXPERIMENT)  # the other worker's
    real_lookup, calls = mlflow.get_experiment_by_name, []

    def lookup_before_the_other_worker(name):  # the first look-up happens before it creates the experiment
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", lookup_before_the_other_worker)
    assert tracking.start_experiment() == existing
    assert len(calls) == 2


def test_new_local_experiment_keeps_artifacts_in_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    experiment_id = tracking.start_experiment()
    location = mlflow.get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "mlartifacts").as_uri()
