"""Subcommands of the ``deepict`` command line, one module per family (see :mod:`..cli`)."""
