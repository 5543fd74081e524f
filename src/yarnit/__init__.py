"""yarnit: reliable machine learning in production, run the way SRE runs services."""

__version__ = "0.1.0"
__all__ = ["__version__"]
