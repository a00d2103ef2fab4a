"""The 15 POI major categories used by the paper (Section 2.3.2, Table 1 POI counts).

The region table stores one count column per category, named ``poi_<category>``.
"""

from __future__ import annotations

POI_CATEGORIES: tuple[str, ...] = (
    "catering",
    "shopping",
    "life_services",
    "sports_leisure",
    "medical",
    "accommodation",
    "scenic_spots",
    "residential",
    "government",
    "education_culture",
    "transportation",
    "finance",
    "companies",
    "business",
    "public_facilities",
)
"""Snake-case names of the 15 major POI categories, in column order."""

POI_LABELS: dict[str, str] = {
    "catering": "catering",
    "shopping": "shopping",
    "life_services": "life services",
    "sports_leisure": "sports and leisure",
    "medical": "medical",
    "accommodation": "accommodation",
    "scenic_spots": "scenic spots",
    "residential": "residential",
    "government": "government",
    "education_culture": "education and culture",
    "transportation": "transportation",
    "finance": "finance",
    "companies": "companies",
    "business": "business",
    "public_facilities": "public facilities",
}
"""Human-readable (lower-case) label of each category, for descriptions and prompts."""

POI_PREFIX = "poi_"
"""Prefix of the POI count columns in the region table."""


def poi_column(category: str) -> str:
    """Return the region-table column name of a POI category (``poi_<category>``)."""
    if category not in POI_LABELS:
        raise KeyError(f"unknown POI category {category!r}")
    return POI_PREFIX + category


POI_COLUMNS: tuple[str, ...] = tuple(poi_column(c) for c in POI_CATEGORIES)
"""Region-table column names of the POI counts, in category order."""
