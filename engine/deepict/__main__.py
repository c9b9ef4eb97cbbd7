"""``python -m deepict``: the ``deepict`` command."""

from deepict.cli.main import main

raise SystemExit(main())
