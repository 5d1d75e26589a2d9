"""A reproducible NER pipeline measuring what character embeddings add to an RNN tagger."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of stage logs
