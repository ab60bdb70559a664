"""Layer 3: strict scoring reports, relation reports, cross-validation."""
