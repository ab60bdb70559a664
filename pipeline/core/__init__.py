"""Layer 0, no torch: schema, documents, annotation records, validation, markup, alignment, metrics, files, errors."""
