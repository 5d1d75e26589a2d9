"""Benchmarks of the pipeline: speed (training, tagging) and scale (trainings at once)."""
import pipeline  # noqa: F401  (first: TensorFlow is then imported without its start-up lines)
