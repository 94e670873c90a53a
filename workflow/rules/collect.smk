# `results/tables`: every table and figure of every stage (TABLE_FILES), collected with an index.


rule tables:
    input:
        TABLE_FILES,
    output:
        directory("results/tables"),
    log:
        "logs/tables/collect.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "python -m synthproxy collect-tables --inputs {input} --out {output} > {log} 2>&1"
