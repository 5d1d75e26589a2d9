"""Everything the pipeline tells MLflow (see store.py for the modules). The only place that
imports mlflow."""
