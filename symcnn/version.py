"""The package's version, in a leaf of its own: the command line and the template cache read it."""

__version__ = "0.1.0"
