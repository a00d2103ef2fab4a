# urbanmoe's workflow: the rules live in workflow/ (see workflow/Snakefile); `snakemake`
# with no target builds everything the paper target lists.
include: "workflow/Snakefile"


rule all:
    input:
        rules.paper.input,
    default_target: True
