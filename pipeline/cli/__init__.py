"""The commands beside the pipeline: `ner` (every command), predict, search, the team
tracking server and the quick run. No command imports another."""
