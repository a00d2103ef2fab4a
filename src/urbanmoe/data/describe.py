"""Region descriptions from POI counts: the offline ``template`` describer and the LLM prompt.

The paper (Section 2.3.3, Appendix E, Figure 6) turns each region's meta information and POI
list into a short paragraph with an LLM (Gemini Flash 2.0) and encodes it with a CLIP text
encoder. :func:`build_prompt` writes that prompt; :func:`describe_template` is the offline,
deterministic stand-in: a rule-based paragraph in the same spirit (the area's function, its
density and its dominant amenities) that depends only on the counts and the meta information.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from urbanmoe.data.poi import POI_CATEGORIES, POI_LABELS, POI_PREFIX
from urbanmoe.errors import DataError

# Functional groups of the 15 categories and how the description words each of them.
_FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "commercial": (
        ("catering", "shopping", "accommodation"),
        "a commercial area for dining, retail and visitors",
    ),
    "business": (
        ("business", "companies", "finance"),
        "an employment centre of offices, firms and financial services",
    ),
    "residential": (
        ("residential", "life_services"),
        "a residential neighbourhood supported by everyday services",
    ),
    "public": (
        ("medical", "education_culture", "government", "public_facilities"),
        "a civic area with hospitals, schools and public institutions",
    ),
    "transport": (("transportation",), "a transport node with stations and parking"),
    "recreation": (
        ("scenic_spots", "sports_leisure"),
        "a recreational area with parks, scenic spots and sports venues",
    ),
}

# (lower bound of the total POI count, adjective, kind of place), densest first.
_DENSITY_TIERS: tuple[tuple[int, str, str], ...] = (
    (800, "very densely developed", "urban core"),
    (200, "densely developed", "urban"),
    (50, "moderately developed", "suburban"),
    (10, "sparsely developed", "urban-fringe"),
    (1, "barely developed", "rural or fringe"),
)

_ESSENTIALS = ("medical", "education_culture", "transportation")


def _normalise_counts(poi_counts: Mapping[str, int]) -> dict[str, int]:
    """Map ``category`` or ``poi_category`` keys to a full, validated ``{category: count}``."""
    counts = dict.fromkeys(POI_CATEGORIES, 0)
    for key, value in poi_counts.items():
        cat = key[len(POI_PREFIX) :] if key.startswith(POI_PREFIX) else key
        if cat not in counts:
            raise DataError(f"unknown POI category {key!r}")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        n = int(value)
        if n != value or n < 0:
            raise DataError(f"POI count for {key!r} must be a non-negative integer, got {value!r}")
        counts[cat] += n
    return counts


def _format_location(city: str | None, lat: float | None, lon: float | None) -> str:
    """Return ' in <city>, centred at 31.2300°N, 121.4700°E,' (parts present only if given)."""
    text = f" in {city}" if city else ""
    if lat is not None and lon is not None:
        ns = "N" if lat >= 0 else "S"
        ew = "E" if lon >= 0 else "W"
        text += f"{',' if city else ''} centred at {abs(lat):.4f}°{ns}, {abs(lon):.4f}°{ew},"
    return text


def _join(items: list[str]) -> str:
    """Join words as 'a', 'a and b' or 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Categories with a positive count, by count (descending), ties in category order."""
    order = {c: i for i, c in enumerate(POI_CATEGORIES)}
    return sorted(((c, n) for c, n in counts.items() if n > 0), key=lambda t: (-t[1], order[t[0]]))


def describe_template(
    poi_counts: Mapping[str, int],
    *,
    city: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> str:
    """Describe a region from its POI counts with fixed rules (no randomness, no network).

    Implements the offline ``template`` describer: a paragraph characterising the region's
    density (tiers of the total POI count), its dominant amenities (top categories and their
    shares), its mix (single-function when one category holds half of the POIs, highly mixed
    when the normalised Shannon entropy of the category shares is high) and its main urban
    function (the functional group with the largest share), then notes missing essential
    services. Keys may be category names or ``poi_<category>`` columns; missing ones count 0.
    """
    counts = _normalise_counts(poi_counts)
    total = sum(counts.values())
    where = _format_location(city, lat, lon)
    if total == 0:
        return (
            f"This region{where} contains no recorded points of interest. It is most likely "
            "open water, farmland, forest or other undeveloped land, with little everyday "
            "urban activity."
        )
    adjective, kind = next((a, k) for lo, a, k in _DENSITY_TIERS if total >= lo)
    noun = "point" if total == 1 else "points"
    sentences = [f"This region{where} is a {adjective} {kind} area with {total} recorded {noun} "
                 "of interest."]

    ranked = _ranked(counts)
    shares = [n / total for _, n in ranked]
    top = [f"{POI_LABELS[c]} ({round(100 * n / total)}%)" for c, n in ranked[:3]]
    if len(ranked) == 1:
        sentences.append(f"All of them are {POI_LABELS[ranked[0][0]]} facilities.")
    else:
        verb = "dominate" if len(top) > 1 else "dominates"
        sentences.append(f"Among its amenities, {_join(top)} {verb}.")

    group_share = {
        g: sum(counts[c] for c in cats) / total for g, (cats, _) in _FUNCTIONS.items()
    }
    groups = sorted(_FUNCTIONS, key=lambda g: (-group_share[g], list(_FUNCTIONS).index(g)))
    primary, secondary = groups[0], groups[1]
    entropy = -sum(p * math.log(p) for p in shares) / math.log(len(POI_CATEGORIES))
    if shares[0] >= 0.5:
        top_group = next(g for g, (cats, _) in _FUNCTIONS.items() if ranked[0][0] in cats)
        sentences.append(
            f"With one category holding {round(100 * shares[0])}% of the POIs, it is largely a "
            f"single-function place: {_FUNCTIONS[top_group][1]}."
        )
    elif entropy >= 0.75 and len(ranked) >= 8:
        sentences.append(
            "The functions are highly mixed, with a balanced variety of amenities; the area "
            f"works mainly as {_FUNCTIONS[primary][1]}, and also as "
            f"{_FUNCTIONS[secondary][1]}."
        )
    else:
        mix = "mixed-use" if group_share[secondary] >= 0.2 else "fairly specialised"
        sentences.append(
            f"It is a {mix} area that serves mainly as {_FUNCTIONS[primary][1]}, with a "
            f"secondary role as {_FUNCTIONS[secondary][1]}."
        )

    missing = [POI_LABELS[c] for c in _ESSENTIALS if counts[c] == 0]
    if total >= 50 and missing:
        sentences.append(f"Notably, it has no {_join(missing)} facilities.")
    elif total < 50:
        sentences.append("Amenities are limited, so most daily needs are met elsewhere.")
    elif counts["transportation"] / total >= 0.08:
        sentences.append("Good transport access links it closely to the rest of the city.")
    return " ".join(sentences)


# The same inputs as describe_template, on purpose: the template describer is the offline
# stand-in for the LLM that answers this prompt, so both read the same facts about a region.
def build_prompt(
    poi_counts: Mapping[str, int],
    *,
    city: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> str:
    """Return the LLM prompt that asks for a region description (after Appendix E, Figure 6).

    The prompt gives the region's meta information (city, centre coordinates, when known) and
    its POI list (count per major category, all 15 listed, and the total), and asks for one
    concise paragraph on the region's urban function, development density and dominant
    amenities, the same content the ``template`` describer produces offline.
    """
    counts = _normalise_counts(poi_counts)
    meta = []
    if city:
        meta.append(f"- City: {city}")
    if lat is not None and lon is not None:
        meta.append(f"- Region centre: latitude {lat:.4f}, longitude {lon:.4f}")
    meta.append("- Region size: one satellite image patch (about 2 km x 2 km)")
    poi_lines = [f"- {POI_LABELS[c].capitalize()}: {counts[c]}" for c in POI_CATEGORIES]
    poi_lines.append(f"- Total: {sum(counts.values())}")
    return "\n".join(
        [
            "You are an expert in urban planning and urban geography. Below are the meta "
            "information and the list of points of interest (POIs), counted per major "
            "category, of one urban region.",
            "",
            "Meta information:",
            *meta,
            "",
            "POI list (category: number of POIs):",
            *poi_lines,
            "",
            "Based on this information, write a concise description (3 to 5 sentences, one "
            "paragraph of plain text) of the region's urban function: its main land use and "
            "functional role (e.g. commercial, residential, industrial, mixed-use, "
            "recreational), how dense its development and activity are, and which amenities "
            "dominate. Do not repeat the raw counts and do not invent facts beyond the data.",
        ]
    )
