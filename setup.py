"""Build henn and he_core; the native kernels are compiled through cffi (see csrc/build_native.py)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# One public header (csrc/he_core.h), one cffi module per section of it.
CFFI_MODULES = (
    [f"csrc/build_native.py:ffi_{name}" for name in ("vhe", "ckks")]
    if os.path.exists(os.path.join(HERE, "csrc", "he_core.h"))
    else []
)

DISTRIBUTED = ["dask>=2026.8.0", "distributed>=2026.8.0"]
TEST = ["pytest>=7", "hypothesis>=6", "pytest-benchmark>=4", "scikit-learn>=1.0"] + DISTRIBUTED
BENCH = ["pytest-benchmark>=4", "matplotlib>=3.5", "scikit-learn>=1.0"]
SKLEARN = ["scikit-learn>=1.0"]
PEERS = ["tenseal; python_version=='3.11'", "openfhe; python_version=='3.10'", "Pyfhel; python_version<'3.11'"]

setup(
    name="henn",
    version="0.1.0",
    description="Homomorphic-encryption neural networks: train with encrypted weights, infer on encrypted data.",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(HERE, "README.md"))
    else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["he_core", "he_core.*", "henn", "henn.*"]),
    setup_requires=["cffi>=1.15"],
    cffi_modules=CFFI_MODULES,
    install_requires=["numpy>=1.24", "numba>=0.58", "cffi>=1.15", "tqdm>=4.60", "matplotlib>=3.5", "cryptography>=41"],
    extras_require={"test": TEST, "bench": BENCH, "peers": PEERS, "sklearn": SKLEARN,
                    "distributed": DISTRIBUTED, "all": TEST + BENCH},
    entry_points={
        "console_scripts": ["henn=henn.cli:main"],
    },
    zip_safe=False,
)
