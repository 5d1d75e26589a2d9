"""The taggers: Keras layers (char encoders, fused BiLSTM, CRF), the network built from
params, the optimizer, the saved tagger and its Python API. Free of DVC, MLflow and Ray."""
