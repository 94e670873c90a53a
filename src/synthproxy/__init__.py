"""synthproxy: neural proxies for sound synthesizers, as a reproducible research workflow."""

import os
from importlib.metadata import PackageNotFoundError, version

# Reproducible CPU arithmetic, set before torch loads (child processes inherit it; a value already in the
# environment wins): MKL's conditional numerical reproducibility on its AVX2 code path makes matrix products
# independent of the thread count and the same on every AVX2 CPU; ATen's and oneDNN's kernels are held to AVX2 too,
# so a machine with AVX-512 computes what a laptop computes. See the README, "Determinism".
CPU_REPRODUCIBILITY = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
for _key, _value in CPU_REPRODUCIBILITY.items():
    os.environ.setdefault(_key, _value)

try:
    __version__ = version("synthproxy")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
