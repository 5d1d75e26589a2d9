"""The data: corpus readers and writers, tokenizer, vocabularies, word vectors, the datasets'
public files and their download. Below everything but the foundation; knows no params."""
