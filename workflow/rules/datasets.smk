# Synthetic datasets: sample -> render -> RMS filter -> embed, into one Zarr store per (synth, split).


rule init_store:
    input:
        spec=lambda w: CFG["synths"][w.synth]["spec"],
    output:
        "results/data/{synth}/{split}.init.json",
    params:
        cfg=lambda w: dataset_config(w.synth, w.split),
        store=lambda w: store(w.synth, w.split),
    log:
        "logs/datasets/init_store/{synth}_{split}.log",
    conda:
        "../../envs/datasets.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=planned_runtime("init_store", 10),
    shell:
        "python -m synthproxy init-store --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--split {wildcards.split} --store {params.store} --marker {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule render_shard:
    input:
        "results/data/{synth}/{split}.init.json",
    output:
        "results/data/{synth}/{split}.shards/{shard}.json",
    params:
        cfg=lambda w: dataset_config(w.synth, w.split),
        store=lambda w: store(w.synth, w.split),
    log:
        "logs/datasets/render_shard/{synth}_{split}_{shard}.log",
    conda:
        "../../envs/datasets.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=planned_runtime("render_shard", 240),
    shell:
        "python -m synthproxy render-shard --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--split {wildcards.split} --store {params.store} --shard {wildcards.shard} --threads {threads} "
        "--marker {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule finalize_split:
    input:
        lambda w: expand(
            "results/data/{{synth}}/{{split}}.shards/{shard}.json", shard=range(n_shards(w.split))
        ),
    output:
        "results/data/{synth}/{split}.stats.json",
    params:
        cfg=lambda w: dataset_config(w.synth, w.split),
        store=lambda w: store(w.synth, w.split),
    log:
        "logs/datasets/finalize_split/{synth}_{split}.log",
    conda:
        "../../envs/datasets.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=planned_runtime("finalize_split", 30),
    shell:
        "python -m synthproxy finalize-split --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--split {wildcards.split} --store {params.store} --shard-markers {input} --out {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule dataset_summary:
    input:
        expand("results/data/{synth}/{split}.stats.json", synth=SYNTHS, split=SPLITS),
    output:
        report(
            "results/analysis/dataset_summary.csv",
            category="Datasets",
            caption="../report/dataset_summary.rst",
        ),
        "results/analysis/dataset_summary.md",
        "results/analysis/dataset_summary.tex",
    params:
        prefix=lambda w, output: output[0].removesuffix(".csv"),
    log:
        "logs/datasets/dataset_summary.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=planned_runtime("dataset_summary", 5),
    shell:
        "python -m synthproxy dataset-summary --stats {input} --out-prefix {params.prefix} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
