"""Training: the fit loop and its callbacks, the batches, which (model, seed) pairs need
training and how a finished one is put in place, and the Ray cluster that runs them."""
