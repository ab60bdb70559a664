"""Layer 4: extraction runs (batch, Ray), HTML views, embeddings, the Label Studio round trip."""
