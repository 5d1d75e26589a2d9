"""A reproducible NER pipeline measuring what character embeddings add to an RNN tagger."""
