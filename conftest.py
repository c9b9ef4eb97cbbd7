"""pytest setup: a private headless Scipion environment, set before anything imports pyworkflow."""

import os
import tempfile

from deepict_scipion.headless import scipion_environment

os.environ.update(scipion_environment(
    os.environ.get("DEEPICT_TEST_ROOT") or tempfile.mkdtemp(prefix="deepict-scipion-tests-")))
