"""deepict_scipion: DeePiCt (Deep Picker in Context) in PyTorch, as a Scipion plugin and a command line."""

from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("deepict_scipion/core/__init__.py").read_text(), version)

setup(
    name="scipion-em-deepict-torch",
    version=version["__version__"],
    description="DeePiCt cryo-ET particle picking and segmentation in PyTorch, as a Scipion plugin",
    long_description=Path("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(exclude=["benchmarks"]),
    package_data={"deepict_scipion": ["protocols.conf"]},
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "mrcfile>=1.4",
        "emtable>=0.0.14",
        "scipion-pyworkflow>=3.11",
        "scipion-em>=3.11",
        "scipion-em-tomo>=3.12",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={
        "pyworkflow.plugin": ["deepict_scipion = deepict_scipion"],
        "console_scripts": [
            "deepict = deepict_scipion.core.cli:main",
            "deepict-demo = deepict_scipion.demo:main",
        ],
    },
)
