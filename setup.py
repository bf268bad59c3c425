"""Packaging for fer-sklearn."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="fer-sklearn",
    version="0.1.0",
    description=(
        "Compare facial-expression classifiers as scikit-learn estimators: "
        "accuracy, subgroup bias and explanations, with a benchmark harness."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["fer_sklearn", "fer_sklearn.*", "benchmark", "benchmark.*"]),
    install_requires=[
        "numpy>=2.0",
        "scipy>=1.13",
        "pandas>=2.2.2",
        "pillow>=10.0",
        "scikit-learn>=1.6,<2",
        "skorch>=1.3.1,<2",
        "torch>=2.4",
        "torchvision>=0.19",
        "tabulate>=0.9",
        "matplotlib>=3.9",
        "fairlearn>=0.10",
        "shap>=0.46",
        "captum>=0.7",
        "tqdm>=4.60",
        "tomli>=2.0; python_version < '3.11'",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2"],
        "dask": ["dask>=2024.1", "distributed>=2024.1"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
