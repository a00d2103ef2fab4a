"""Baselines, one module per family (Table 2 and the stronger ones a reviewer asks for)."""
