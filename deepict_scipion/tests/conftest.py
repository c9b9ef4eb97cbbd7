"""pytest setup of the plugin's tests: a private headless Scipion environment, set before anything
imports pyworkflow (which reads its configuration once, when first imported)."""

import os
import tempfile

from deepict_scipion.headless import scipion_environment

os.environ.update(scipion_environment(
    os.environ.get("DEEPICT_TEST_ROOT") or tempfile.mkdtemp(prefix="deepict-scipion-tests-")))


def pytest_configure(config):
    config.addinivalue_line("markers", "gui: opens Scipion's GUI under Xvfb and saves screenshots (pytest -m gui)")
