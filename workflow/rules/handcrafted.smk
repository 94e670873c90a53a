# Hand-crafted presets (paper Sec. 4.1.3, 7): import -> render/RMS filter -> embed, per synth; the import
# table; synthetic vs hand-crafted distributions (Fig. 3); the encoders on hand-crafted presets (Table 4).


rule fetch_dx7_cartridges:
    output:
        directory("results/external/dx7_cartridges"),
    log:
        "logs/handcrafted/fetch_dx7_cartridges.log",
    conda:
        "../../envs/handcrafted.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=planned_runtime("fetch_dx7_cartridges", 30),
    shell:
        "python -m synthproxy fetch-dx7-cartridges --dest {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule import_handcrafted:
    input:
        unpack(handcrafted_inputs),
    output:
        report="results/data/{synth}/handcrafted.import.json",
        files="results/data/{synth}/handcrafted.import.files.csv",
    params:
        cfg=lambda w: handcrafted_config(w.synth),
        store=lambda w: store(w.synth, "handcrafted"),
        source=lambda w, input: f"--source {input.fetched}" if "fetched" in input.keys() else "",
        # a digest of the preset folder's files: adding, removing or editing one reruns the import
        manifest=lambda w: preset_folder_manifest(w.synth),
    log:
        "logs/handcrafted/import_handcrafted/{synth}.log",
    conda:
        "../../envs/handcrafted.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=planned_runtime("import_handcrafted", 30),
    shell:
        "python -m synthproxy import-handcrafted --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--store {params.store} {params.source} --report {output.report} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule render_handcrafted:
    input:
        "results/data/{synth}/handcrafted.import.json",
    output:
        "results/data/{synth}/handcrafted.shards/{shard}.json",
    params:
        cfg=lambda w: handcrafted_config(w.synth),
        store=lambda w: store(w.synth, "handcrafted"),
    log:
        "logs/handcrafted/render_handcrafted/{synth}_{shard}.log",
    conda:
        "../../envs/handcrafted.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=planned_runtime("render_handcrafted", 240),
    shell:
        "python -m synthproxy render-handcrafted --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--store {params.store} --shard {wildcards.shard} --threads {threads} --marker {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule finalize_handcrafted:
    input:
        report="results/data/{synth}/handcrafted.import.json",
        shards=expand(
            "results/data/{{synth}}/handcrafted.shards/{shard}.json",
            shard=range(CFG.get("handcrafted", {}).get("shards", 1)),
        ),
    output:
        "results/data/{synth}/handcrafted.stats.json",
    params:
        cfg=lambda w: handcrafted_config(w.synth),
        store=lambda w: store(w.synth, "handcrafted"),
    log:
        "logs/handcrafted/finalize_handcrafted/{synth}.log",
    conda:
        "../../envs/handcrafted.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=planned_runtime("finalize_handcrafted", 30),
    shell:
        "python -m synthproxy finalize-handcrafted --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--store {params.store} --import-report {input.report} --shard-markers {input.shards} --out {output} "
        "> {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule handcrafted_import_table:
    input:
        expand("results/data/{synth}/handcrafted.stats.json", synth=HANDCRAFTED_SYNTHS),
    output:
        table=report(
            "results/analysis/handcrafted_import.csv",
            category="Hand-crafted presets",
            caption="../report/handcrafted_import.rst",
        ),
        md="results/analysis/handcrafted_import.md",
    params:
        prefix=lambda w, output: output.table.removesuffix(".csv"),
    log:
        "logs/handcrafted/handcrafted_import_table.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=planned_runtime("handcrafted_import_table", 5),
    shell:
        "python -m synthproxy handcrafted-import-table --stats {input} --out-prefix {params.prefix} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


if HANDCRAFTED_SYNTHS and DIST:

    rule distribution:
        input:
            synthetic=expand(
                "results/data/{synth}/{split}.stats.json", synth=HANDCRAFTED_SYNTHS, split=DIST["synthetic_split"]
            ),
            handcrafted=expand("results/data/{synth}/handcrafted.stats.json", synth=HANDCRAFTED_SYNTHS),
        output:
            table=report(
                "results/analysis/wasserstein.csv",
                category="Hand-crafted presets",
                caption="../report/distribution.rst",
            ),
            md="results/analysis/wasserstein.md",
            tex="results/analysis/wasserstein.tex",
            figure=report(
                "results/analysis/umap.png", category="Hand-crafted presets", caption="../report/distribution.rst"
            ),
            projections="results/analysis/umap_points.csv",
        params:
            cfg=json.dumps({"seed": CFG["seed"], "synths": CFG["synths"], "render": CFG["render"], "distribution": DIST}),
            pairs=" ".join(
                f"--pair {s} {store(s, DIST['synthetic_split'])} {store(s, 'handcrafted')}" for s in HANDCRAFTED_SYNTHS
            ),
            key=DIST.get("representation", ""),
            prefix=lambda w, output: output.table.removesuffix(".csv"),
        log:
            "logs/handcrafted/distribution.log",
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=planned_runtime("distribution", 60),
        shell:
            "python -m synthproxy distribution --config-json {params.cfg:q} {params.pairs} --key {params.key} "
            "--out-prefix {params.prefix} --figure {output.figure} --projections {output.projections} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


if HANDCRAFTED_TRAINED:

    rule evaluate_handcrafted:
        input:
            summary="results/models/{synth}/{arch}/summary.json",
            handcrafted="results/data/{synth}/handcrafted.stats.json",
        output:
            "results/eval/{synth}/{arch}/handcrafted.json",
        params:
            ckpt=lambda w: f"results/models/{w.synth}/{w.arch}/{TRAINING['evaluation']['checkpoint']}.pt",
            store=lambda w: store(w.synth, "handcrafted"),
            runs=TRAINING["evaluation"]["runs"],
            k=TRAINING["evaluation"]["k"],
            seed=CFG["seed"],
        log:
            "logs/handcrafted/evaluate_handcrafted/{synth}_{arch}.log",
        conda:
            "../../envs/training.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=planned_runtime("evaluate_handcrafted", 120),
        shell:
            "python -m synthproxy evaluate-handcrafted --checkpoint {params.ckpt} --store {params.store} "
            "--n-runs {params.runs} --k {params.k} --seed {params.seed} --threads {threads} "
            "--synth {wildcards.synth} --out {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule handcrafted_table:
        input:
            hand=expand(
                "results/eval/{synth}/{arch}/handcrafted.json", synth=HANDCRAFTED_TRAINED, arch=ARCHS
            ),
            synthetic=expand(
                "results/eval/{synth}/{arch}/synthetic.json", synth=HANDCRAFTED_TRAINED, arch=ARCHS
            ),
        output:
            table=report(
                "results/analysis/handcrafted.csv",
                category="Hand-crafted presets",
                caption="../report/handcrafted.rst",
            ),
            md="results/analysis/handcrafted.md",
            tex="results/analysis/handcrafted.tex",
        params:
            prefix=lambda w, output: output.table.removesuffix(".csv"),
        log:
            "logs/handcrafted/handcrafted_table.log",
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=planned_runtime("handcrafted_table", 5),
        shell:
            "python -m synthproxy handcrafted-table --hand {input.hand} --synthetic {input.synthetic} "
            "--out-prefix {params.prefix} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
