# urbanmoe's workflow: the rules live in workflow/ (see workflow/Snakefile).
include: "workflow/Snakefile"
