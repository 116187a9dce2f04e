"""greenloop: green consumer finance on evidence.

Identify green purchases against dated, cited standards, account for the CO2 they
avoid, record green loans in a verifiable Merkle log, allocate them to earmarked
funding facilities and spend the interest saved on consumer incentives.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("greenloop")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
