"""The plugin's tests: Scipion's runner (``scipion3 tests``) discovers this package; pytest runs all of it."""
