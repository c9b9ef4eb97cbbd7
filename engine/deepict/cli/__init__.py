"""The ``deepict`` command line (:mod:`.main`): one module per family of subcommands."""
