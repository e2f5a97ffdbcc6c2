"""chaosk3s: prove that K3s split-role clusters heal."""

__version__ = "0.1.0"
