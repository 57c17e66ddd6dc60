"""btec: the backend of the BTEC assessment platform."""

from importlib import metadata

try:
    __version__ = metadata.version("btec")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
