"""The modules of the baselines (Table 2 and the stronger ones a reviewer asks for); how each is
fitted on a prepared dataset is ``training/baselines``."""
