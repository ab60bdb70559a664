"""Layer 2: the run harness, splits, NER / relation training, pretraining, encoder import."""
