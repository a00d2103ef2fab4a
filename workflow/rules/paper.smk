rule table2:
    input:
        notebook=os.path.join(NOTEBOOKS, "table2.ipynb"),
        published=os.path.join(PUBLISHED, "published_table2.csv"),
        runs=table2_runs,
    output:
        PAPER_ARTIFACTS,
        notebook="results/notebooks/table2.ipynb",
    log:
        "logs/paper/table2.log",
    params:
        datasets=yaml_list(DATASETS),
        note=data_note,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook} {output.notebook} -k python3 -p runs_dir results/runs"
        " -p out_dir paper_figures -p published {input.published}"
        " -y 'datasets: {params.datasets}' -p data_note '{params.note}' > {log} 2>&1"
