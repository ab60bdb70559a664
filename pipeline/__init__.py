"""planie: structured commitments from Chinese quality-development plan documents."""

__version__ = "0.1.0"
