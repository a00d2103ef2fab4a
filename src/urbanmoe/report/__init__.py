"""Reports: the tables, figures and claims drawn from datasets and run folders."""
