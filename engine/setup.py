"""deepict: the DeePiCt engine (cryo-ET spectrum equalization, 2D/3D U-Nets, picking, evaluation, export).

It needs no Scipion. torch is an extra so that a site chooses its build (CPU or a CUDA version):
``pip install ./engine[torch]``, or install torch first and then ``pip install ./engine``.
"""

from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec((Path(__file__).parent / "deepict" / "__init__.py").read_text(), version)

setup(
    name="deepict-engine",
    version=version["__version__"],
    description="DeePiCt cryo-ET particle picking and segmentation in PyTorch (engine and command line)",
    url=version["__url__"],
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["deepict", "deepict.*"]),
    install_requires=["numpy>=1.24", "scipy>=1.10", "mrcfile>=1.4", "emtable>=0.0.14", "scikit-image>=0.19"],
    extras_require={"torch": ["torch>=2.1"], "test": ["pytest"], "zarr": ["zarr>=2.16"]},
    entry_points={"console_scripts": ["deepict = deepict.cli.main:main"]},
)
