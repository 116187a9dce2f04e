"""Green-consumption categories and verdict statuses shared by every package.

A category id names one green-consumption standard family. The same ids appear in
the standards files, verdicts, impact methods, facility eligibility and campaign
eligibility, so they are defined once here.
"""

from enum import StrEnum


class Category(StrEnum):
    """A green-consumption category, as named in the standards files."""

    APPLIANCE = "appliance"
    NEW_ENERGY_VEHICLE = "new_energy_vehicle"
    PUBLIC_TRANSPORT = "public_transport"
    ORGANIC_FOOD = "organic_food"
    GREEN_FOOD = "green_food"
    GREEN_PRODUCT = "green_product"
    ENVIRONMENTAL_LABEL = "environmental_label"
    SECOND_HAND = "second_hand"
    ENERGY_STAR = "energy_star"
    EU_ECOLABEL = "eu_ecolabel"


class Status(StrEnum):
    """The status of a verdict."""

    GREEN = "green"
    NEEDS_REVIEW = "needs_review"
    NOT_GREEN = "not_green"


class Jurisdiction(StrEnum):
    """A jurisdiction whose green-consumption standards greenloop ships."""

    CN = "cn"
    US = "us"
    EU = "eu"
