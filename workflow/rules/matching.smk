# Sound matching with neural proxies (paper 1 Sec. 8): the out-of-domain set, the in-domain features of the
# hand-crafted presets, proxy finetuning, estimator training per strategy x relaxation, evaluation on the real
# synth, Tables 5-6 analogs and the listening page.

if OOD:

    rule build_out_of_domain:
        output:
            "results/data/out_of_domain.json",
        params:
            cfg=json.dumps({"seed": CFG["seed"], "synths": CFG["synths"], "render": CFG["render"],
                            "out_of_domain": OOD}, sort_keys=True),
            store="results/data/out_of_domain.zarr",
        log:
            "logs/matching/build_out_of_domain.log",
        conda:
            "../../envs/matching.yaml"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=planned_runtime("build_out_of_domain", 120),
        shell:
            "python -m synthproxy build-out-of-domain --config-json {params.cfg:q} --store {params.store} "
            "--marker {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule out_of_domain_summary:
        input:
            "results/data/out_of_domain.json",
        output:
            table=report(
                "results/analysis/out_of_domain.csv", category="Sound matching", caption="../report/out_of_domain.rst"
            ),
            md="results/analysis/out_of_domain.md",
            tex="results/analysis/out_of_domain.tex",
        params:
            store="results/data/out_of_domain.zarr",
            prefix=lambda w, output: output.table.removesuffix(".csv"),
        log:
            "logs/matching/out_of_domain_summary.log",
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=planned_runtime("out_of_domain_summary", 5),
        shell:
            "python -m synthproxy out-of-domain-summary --store {params.store} --out-prefix {params.prefix} "
            "> {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


if MATCH_SYNTHS:

    wildcard_constraints:
        model="|".join(match_models()),

    rule matching_features:
        input:
            "results/data/{synth}/handcrafted.stats.json",
        output:
            "results/data/{synth}/matching.json",
        params:
            cfg=lambda w: matching_config(w.synth),
            handcrafted=lambda w: store(w.synth, "handcrafted"),
            store=lambda w: store(w.synth, "matching"),
        log:
            "logs/matching/matching_features/{synth}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=planned_runtime("matching_features", 120),
        shell:
            "python -m synthproxy matching-features --config-json {params.cfg:q} --synth {wildcards.synth} "
            "--handcrafted-store {params.handcrafted} --store {params.store} --marker {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule finetune_proxy:
        input:
            summaries=expand("results/models/{{synth}}/{arch}/summary.json", arch=ARCHS),
            handcrafted="results/data/{synth}/handcrafted.stats.json",
        output:
            "results/matching/{synth}/proxy/summary.json",
        params:
            cfg=lambda w: matching_config(w.synth),
            handcrafted=lambda w: store(w.synth, "handcrafted"),
            out=lambda w, output: os.path.dirname(output[0]),
        log:
            "logs/matching/finetune_proxy/{synth}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=planned_runtime("finetune_proxy", 240),
            gpu=gpu_request(),
        shell:
            "python -m synthproxy finetune-proxy --config-json {params.cfg:q} --synth {wildcards.synth} "
            "--summaries {input.summaries} --handcrafted-store {params.handcrafted} --out-dir {params.out} "
            "--summary {output} --threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule train_estimator:
        input:
            unpack(lambda w: {"features": f"results/data/{w.synth}/matching.json"} | (
                {"proxy": f"results/matching/{w.synth}/proxy/summary.json"} if model_uses_proxy(w.model) else {})),
        output:
            "results/matching/{synth}/{model}/summary.json",
        params:
            cfg=lambda w: matching_config(w.synth),
            store=lambda w: store(w.synth, "matching"),
            proxy=lambda w, input: f"--proxy {input.proxy}" if "proxy" in input.keys() else "",
            out=lambda w, output: os.path.dirname(output[0]),
        log:
            "logs/matching/train_estimator/{synth}_{model}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 2
        resources:
            mem_mb=6000,
            runtime=planned_runtime("train_estimator", 720),
            gpu=gpu_request(),
        shell:
            "python -m synthproxy train-estimator --config-json {params.cfg:q} --synth {wildcards.synth} "
            "--model {wildcards.model} --store {params.store} {params.proxy} --out-dir {params.out} "
            "--summary {output} --threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule evaluate_matching:
        input:
            summary="results/matching/{synth}/{model}/summary.json",
            features="results/data/{synth}/matching.json",
            ood="results/data/out_of_domain.json" if OOD else [],
        output:
            scores="results/eval/matching/{synth}/{model}.json",
            examples=directory("results/eval/matching/{synth}/{model}_examples"),
        params:
            cfg=lambda w: matching_config(w.synth),
            store=lambda w: store(w.synth, "matching"),
            estimator=lambda w, input: os.path.join(os.path.dirname(input.summary), "best.pt"),
            ood="--ood-store results/data/out_of_domain.zarr" if OOD else "",
        log:
            "logs/matching/evaluate_matching/{synth}_{model}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 2
        resources:
            mem_mb=6000,
            runtime=planned_runtime("evaluate_matching", 120),
        shell:
            "python -m synthproxy evaluate-matching --config-json {params.cfg:q} --synth {wildcards.synth} "
            "--estimator {params.estimator} --store {params.store} {params.ood} --out {output.scores} "
            "--examples-dir {output.examples} --threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule matching_tables:
        input:
            scores=expand("results/eval/matching/{synth}/{model}.json", synth=MATCH_SYNTHS, model=match_models()),
            examples=expand(
                "results/eval/matching/{synth}/{model}_examples", synth=MATCH_SYNTHS, model=match_models()
            ),
            finetune=expand("results/matching/{synth}/proxy/summary.json", synth=MATCH_SYNTHS),
        output:
            in_domain=report(
                "results/analysis/matching_in_domain.csv",
                category="Sound matching",
                caption="../report/matching.rst",
            ),
            in_md="results/analysis/matching_in_domain.md",
            in_tex="results/analysis/matching_in_domain.tex",
            out_domain=report(
                "results/analysis/matching_out_of_domain.csv",
                category="Sound matching",
                caption="../report/matching.rst",
            ),
            out_md="results/analysis/matching_out_of_domain.md",
            out_tex="results/analysis/matching_out_of_domain.tex",
            finetune=report(
                "results/analysis/proxy_finetune.csv", category="Sound matching", caption="../report/finetune.rst"
            ),
            finetune_md="results/analysis/proxy_finetune.md",
            finetune_tex="results/analysis/proxy_finetune.tex",
            page="results/analysis/matching_examples.html",
            files=directory("results/analysis/matching_examples"),
            report_page=report(
                "results/analysis/matching_examples_report.html",
                category="Sound matching",
                caption="../report/matching_examples.rst",
            ),
        log:
            "logs/matching/matching_tables.log",
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=planned_runtime("matching_tables", 20),
        shell:
            "python -m synthproxy matching-tables --scores {input.scores} --examples {input.examples} "
            "--finetune {input.finetune} --out-dir results/analysis --page {output.page} "
            "--report-page {output.report_page} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
