# MLflow mirrors the result files (which stay the truth): one call per paper artifact mirrors
# all its runs; mirroring again replaces runs, never duplicates them.
rule track_table2:
    input:
        table2_runs,
    output:
        "results/mlflow/table2.json",
    log:
        "logs/track/table2.log",
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    shell:
        "urbanmoe track {input} --experiment table2 --record {output} > {log} 2>&1"


rule provenance:
    input:
        artifacts=PAPER_ARTIFACTS,
        runs=table2_runs,
        records="results/mlflow/table2.json",
    output:
        "paper_figures/provenance.json",
    log:
        "logs/paper/provenance.log",
    params:
        artifacts=artifact_flags,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe provenance --out {output} {params.artifacts} --runs {input.runs}"
        " --records {input.records} --made-by notebooks/table2.ipynb > {log} 2>&1"
