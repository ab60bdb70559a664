"""Layer 1, inference only: rules, the rules linker, NER and relation models, output records."""
