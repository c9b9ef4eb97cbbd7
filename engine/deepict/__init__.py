"""The deepict_scipion engine: numpy + torch only, usable without Scipion (see the ``deepict`` command)."""

__version__ = "0.1.0"
