"""synthproxy: neural proxies for sound synthesizers, as a reproducible research workflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synthproxy")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
