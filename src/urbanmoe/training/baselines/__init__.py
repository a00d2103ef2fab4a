"""Each baseline's fitting on a prepared dataset (Table 2 and the stronger ones a reviewer asks
for), one module per family; the registry (``training/registry.py``) names them."""
