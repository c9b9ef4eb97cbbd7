"""scipion-em-deepict-torch: DeePiCt as a Scipion plugin (protocols, viewers, demo).

The plugin imports no torch: it writes job files and runs the engine (``engine/``, the
``deepict-engine`` distribution) as a command, in Scipion's Python or in an environment of its own.
"""

from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("engine/deepict/__init__.py").read_text(), version)

setup(
    name="scipion-em-deepict-torch",
    version=version["__version__"],
    description="DeePiCt cryo-ET particle picking and segmentation in PyTorch, as a Scipion plugin",
    long_description=Path("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    url=version["__url__"],
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["deepict_scipion", "deepict_scipion.*"]),
    package_data={"deepict_scipion": ["protocols.conf"]},
    install_requires=[
        f"deepict-engine=={version['__version__']}",
        "numpy>=1.24",
        "mrcfile>=1.4",
        "emtable>=0.0.14",
        "scipion-pyworkflow>=3.11",
        "scipion-em>=3.11",
        "scipion-em-tomo>=3.12",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={
        "pyworkflow.plugin": ["deepict_scipion = deepict_scipion"],
        "console_scripts": ["deepict-demo = deepict_scipion.demo:main"],
    },
)
