# setup.py — installs the pure-Python vtopt package (no build step, no network):
#   pip install ./python      (or: pip install --no-build-isolation ./python)
from setuptools import setup

setup(
    name="vtopt",
    version="0.1.0",
    description="Python bindings for vtopt-compiled vision transformer models (ctypes + numpy)",
    packages=["vtopt"],
    python_requires=">=3.8",
    install_requires=["numpy"],
)
