"""Early Signal."""
__version__ = "0.1.0"
