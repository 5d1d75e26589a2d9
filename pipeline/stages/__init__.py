"""The DVC stages of dvc.yaml, one thin module each: read params.yaml and the inputs, call the
library, write the outputs. No stage imports another."""
