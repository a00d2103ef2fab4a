# Input functions only: one urbanmoe.workflow.Plan of the config (importable, unit-tested) holds
# the lists, input and params functions the rules name. Shell commands take every value through
# Snakemake's q modifier ({input:q}); a function returns a list where a value stands for
# several arguments.
import os

from urbanmoe import workflow as wf

plan = wf.Plan(config, repo=os.path.dirname(os.path.dirname(str(workflow.current_basedir))))


def reported(notebook):
    """A notebook's outputs, those the report shows flagged with their paper item's caption."""
    return [
        path if caption is None else report(path, caption=caption, category=category)
        for path, caption, category in wf.report_entries(notebook)
    ]
