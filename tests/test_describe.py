"""Tests of the offline template describer and the LLM prompt (urbanmoe.data.describe)."""

from __future__ import annotations

import pytest

from urbanmoe.data.describe import build_prompt, describe_template
from urbanmoe.data.poi import POI_CATEGORIES, POI_COLUMNS, POI_LABELS

MIXED = {c: 10 + 3 * i for i, c in enumerate(POI_CATEGORIES)}
SHOPS = {"shopping": 400, "catering": 60, "finance": 5}
HOMES = {"residential": 90, "life_services": 70, "education_culture": 12, "medical": 8,
         "transportation": 6, "catering": 30, "shopping": 25}


def test_poi_categories() -> None:
    assert len(POI_CATEGORIES) == 15 == len(set(POI_CATEGORIES))
    assert set(POI_LABELS) == set(POI_CATEGORIES)
    assert all(c == c.lower() and " " not in c for c in POI_CATEGORIES)
    assert POI_COLUMNS[0] == "poi_catering"


def test_template_is_deterministic() -> None:
    a = describe_template(MIXED, city="Shanghai", lat=31.2, lon=121.5)
    b = describe_template(dict(reversed(list(MIXED.items()))), city="Shanghai", lat=31.2, lon=121.5)
    assert a == b


def test_template_changes_with_counts() -> None:
    texts = {describe_template(c) for c in (MIXED, SHOPS, HOMES, {"catering": 3}, {})}
    assert len(texts) == 5
    assert describe_template({"catering": 3}) != describe_template({"catering": 4})


def test_template_wording_follows_function_density_and_mix() -> None:
    shops = describe_template(SHOPS)
    assert "single-function" in shops and "shopping (86%)" in shops and "commercial" in shops
    assert "no medical" in shops
    homes = describe_template(HOMES)
    assert "residential neighbourhood" in homes and "mixed-use" in homes
    mixed = describe_template(MIXED)
    assert "highly mixed" in mixed
    dense = describe_template({c: 100 for c in POI_CATEGORIES})
    assert "very densely developed" in dense and "urban core" in dense
    assert "sparsely developed" in describe_template({"residential": 12})
    assert "no recorded points of interest" in describe_template({})


def test_template_meta_and_input_forms() -> None:
    text = describe_template({"poi_shopping": 5}, city="Washington D.C.", lat=41.0, lon=-73.1)
    assert "Washington D.C." in text and "41.0000°N" in text and "73.1000°W" in text
    assert text == describe_template({"shopping": 5}, city="Washington D.C.", lat=41.0, lon=-73.1)
    with pytest.raises(ValueError, match="unknown POI category"):
        describe_template({"bakeries": 2})
    with pytest.raises(ValueError, match="non-negative"):
        describe_template({"shopping": -1})


def test_prompt_contains_meta_and_poi_list() -> None:
    prompt = build_prompt(HOMES, city="Beijing", lat=39.9, lon=116.4)
    assert "Beijing" in prompt and "39.9000" in prompt and "116.4000" in prompt
    for category in POI_CATEGORIES:
        assert f"- {POI_LABELS[category].capitalize()}: {HOMES.get(category, 0)}" in prompt
    assert f"- Total: {sum(HOMES.values())}" in prompt
    assert "urban function" in prompt and "concise" in prompt
    assert build_prompt(HOMES) != prompt and "Beijing" not in build_prompt(HOMES)
