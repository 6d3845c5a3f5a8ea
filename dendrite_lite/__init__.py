"""dendrite-lite: a Matrix homeserver for small self-hosters."""

__version__ = "0.1.0"
__all__ = ["__version__"]
