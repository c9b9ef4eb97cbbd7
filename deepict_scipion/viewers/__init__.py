"""The plugin's viewers (Scipion discovers them from this module)."""
