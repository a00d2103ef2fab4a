"""Region-table datasets: the embedded synthetic benchmark, POI categories, loaders and splits."""
