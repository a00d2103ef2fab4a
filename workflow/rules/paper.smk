# The notebooks take names and notes from config as raw strings (papermill -r: a dataset
# named 2024 stays a string) and lists as YAML with quoted strings (-y, urbanmoe.workflow.yaml_list).
rule table2:
    input:
        notebook=plan.notebook("table2.ipynb"),
        published=plan.published("published_table2.csv"),
        runs=plan.table2_runs,
    output:
        reported("table2.ipynb"),
        notebook="results/notebooks/table2.ipynb",
    log:
        "logs/paper/table2.log",
    benchmark:
        "results/benchmarks/paper/table2.tsv",
    params:
        datasets=plan.datasets_yaml,
        note=plan.data_note,
        verdicts=plan.verdict_params,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3 -p runs_dir results/runs"
        " -p out_dir paper_figures -p published {input.published:q}"
        " -y {params.datasets:q} -r data_note {params.note:q} {params.verdicts}"
        " > {log:q} 2>&1"


rule ablations:
    input:
        notebook=plan.notebook("ablations.ipynb"),
        published=expand(plan.published("published_table{n}.csv"), n=[3, 4]),
        runs=plan.ablation_runs,
        baselines=plan.table4_baseline_runs,
    output:
        reported("ablations.ipynb"),
        notebook="results/notebooks/ablations.ipynb",
    log:
        "logs/paper/ablations.log",
    benchmark:
        "results/benchmarks/paper/ablations.tsv",
    params:
        dataset=config["experiments"]["dataset"],
        split=config["experiments"]["split"],
        published=plan.published_folder,
        grids=plan.ablation_grids,
        note=plan.data_note,
        bootstrap=plan.bootstrap_params,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3"
        " -p ablations_dir results/ablations -p runs_dir results/runs"
        " -r dataset {params.dataset:q} -r split {params.split:q} -p out_dir paper_figures"
        " -p published_dir {params.published:q} -y {params.grids:q}"
        " -r data_note {params.note:q} {params.bootstrap} > {log:q} 2>&1"


rule experts:
    input:
        notebook=plan.notebook("experts.ipynb"),
        run=plan.figure_run,
    output:
        reported("experts.ipynb"),
        notebook="results/notebooks/experts.ipynb",
    log:
        "logs/paper/experts.log",
    benchmark:
        "results/benchmarks/paper/experts.tsv",
    params:
        tsne_seed=config["experiments"]["tsne_seed"],
        points=config["experiments"]["tsne_points"],
        tsne_iter=config["experiments"]["tsne_iter"],
        note=plan.data_note,
    threads: 6  # Figure 4's six t-SNE panels, as many at a time as there are cores
    priority: 40
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3 -p run_dir {input.run:q}"
        " -p out_dir paper_figures -p tsne_seed {params.tsne_seed} -p tsne_jobs {threads}"
        " -p n_points {params.points} -p tsne_iter {params.tsne_iter}"
        " -r dataset_note {params.note:q} > {log:q} 2>&1"


rule dataset_stats:
    input:
        notebook=plan.notebook("dataset.ipynb"),
        published=plan.published("published_table1.csv"),
        datasets=plan.dataset_dirs,
    output:
        reported("dataset.ipynb"),
        notebook="results/notebooks/dataset.ipynb",
    log:
        "logs/paper/dataset.log",
    benchmark:
        "results/benchmarks/paper/dataset.tsv",
    params:
        roots=plan.dataset_dirs_yaml,
        sample=config["experiments"]["dataset"],
        seed=config["experiments"]["sample_seed"],
        note=plan.data_note,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3"
        " -y {params.roots:q} -p out_dir paper_figures"
        " -p published {input.published:q} -r sample_dataset {params.sample:q}"
        " -p sample_seed {params.seed} -r data_note {params.note:q} > {log:q} 2>&1"


rule claims:
    input:
        "paper_figures/table2.csv",
        "paper_figures/table2_seeds.csv",
        "paper_figures/ablations_summary.csv",
        "paper_figures/ablations_seeds.csv",
        "paper_figures/figure5_weights.csv",
        "paper_figures/sparsity.csv",
    output:
        report("paper_figures/claims.md", caption="../report/claims.rst", category="Claims"),
    log:
        "logs/paper/claims.log",
    benchmark:
        "results/benchmarks/paper/claims.tsv",
    params:
        folder=subpath(input[0], parent=True),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe claims --figures {params.folder:q} --out {output:q} > {log:q} 2>&1"
