"""pytest setup: a private headless Scipion environment, set before anything imports pyworkflow."""

import importlib.util
import os
import tempfile

_spec = importlib.util.spec_from_file_location(
    "deepict_headless", os.path.join(os.path.dirname(__file__), "deepict_scipion", "headless.py"))
_headless = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_headless)

os.environ.update(_headless.scipion_environment(
    os.environ.get("DEEPICT_TEST_ROOT") or tempfile.mkdtemp(prefix="deepict-scipion-tests-")))
