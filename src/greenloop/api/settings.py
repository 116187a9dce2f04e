"""The service's settings, read from the environment or given by the caller."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from greenloop.store.base import database_url

ENVIRONMENT_PREFIX = "GREENLOOP_"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_FACILITIES = PACKAGE_DIR / "funding" / "examples" / "facilities.yaml"
DEFAULT_CAMPAIGNS = PACKAGE_DIR / "incentives" / "examples" / "campaigns.yaml"


@dataclass(frozen=True, slots=True)
class Settings:
    """How the service connects, what it loads and which limits it applies.

    `rate_limit_per_minute` and `rate_limit_burst` bound each API key's requests
    with a token bucket; `max_body_bytes` bounds every request body.
    `facilities_path` and `campaigns_path` are the YAML files the operator
    manages; `key_dir` contains the secret that turns user ids into pseudonyms.
    `api_key_cache_seconds` is how long a verified key is trusted without a
    database read, so a revoked key works for at most that long.
    """

    database_url: str = field(default_factory=database_url)
    jurisdiction: str = "cn"
    registry_dir: Path | None = None
    energy_star_files: tuple[Path, ...] = ()
    key_dir: Path = Path("keys")
    facilities_path: Path = DEFAULT_FACILITIES
    campaigns_path: Path = DEFAULT_CAMPAIGNS
    max_body_bytes: int = 64 * 1024
    # NOTE: 600 a minute per key is a starting guess, not a measured need; a
    # merchant whose checkout sends more decisions needs a higher limit.
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 60
    api_key_cache_seconds: float = 10.0
    certified_products_check_seconds: float = 5.0

    @classmethod
    def from_environment(cls, **overrides: object) -> Settings:
        """Read GREENLOOP_* variables; keyword arguments take precedence."""
        values: dict[str, object] = {}
        text_fields = {
            "jurisdiction": str,
            "max_body_bytes": int,
            "rate_limit_per_minute": int,
            "rate_limit_burst": int,
            "api_key_cache_seconds": float,
            "certified_products_check_seconds": float,
        }
        for name, convert in text_fields.items():
            raw = os.environ.get(f"{ENVIRONMENT_PREFIX}{name.upper()}")
            if raw:
                try:
                    values[name] = convert(raw)
                except ValueError:
                    raise ValueError(
                        f"{ENVIRONMENT_PREFIX}{name.upper()}={raw!r} is invalid; "
                        f"expected a {convert.__name__}"
                    ) from None
        for name in ("registry_dir", "key_dir", "facilities_path", "campaigns_path"):
            raw_path = os.environ.get(f"{ENVIRONMENT_PREFIX}{name.upper()}")
            if raw_path:
                values[name] = Path(raw_path)
        energy_star = os.environ.get(f"{ENVIRONMENT_PREFIX}ENERGY_STAR_FILES")
        if energy_star:
            values["energy_star_files"] = tuple(
                Path(part) for part in energy_star.split(os.pathsep) if part
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
