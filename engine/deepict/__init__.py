"""The deepict_scipion engine: numpy + torch only, usable without Scipion (see the ``deepict`` command)."""

__version__ = "0.1.0"

#: The project's home, which both distributions' setup.py and the Scipion plugin (``Plugin._url``) give. It has no
#: public repository of its own yet, so this is the DeePiCt paper the method comes from (its DOI), not the original
#: Keras implementation's repository: this code's issues do not belong there.
__url__ = "https://doi.org/10.1038/s41592-022-01746-2"
