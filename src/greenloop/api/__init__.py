"""The FastAPI service: checkout, certification, funders, consumers, operators.

`create_app(settings)` builds the application; `greenloop serve` runs it.
"""

from greenloop.api.app import create_app
from greenloop.api.settings import Settings

__all__ = ["Settings", "create_app"]
