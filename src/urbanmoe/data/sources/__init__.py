"""Adapters that turn published urban datasets into the region-table contract (docs/data.md)."""

from urbanmoe.data.sources.urbanclip import fetch_commands, import_urbanclip_city

__all__ = ["fetch_commands", "import_urbanclip_city"]
