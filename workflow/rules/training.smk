# Preset encoders (paper Sec. 4.2, 6, App. 11.2-11.3): HPO, training, evaluation on synthetic presets
# (Table 3) and on hand-crafted presets (Table 4).

if TRAINING:

    rule hpo:
        input:
            train=lambda w: f"results/data/{w.synth}/{TRAINING['hpo']['train_split']}.stats.json",
            val=lambda w: f"results/data/{w.synth}/{TRAINING['hpo']['val_split']}.stats.json",
        output:
            best="results/hpo/{synth}/{arch}/best_params.json",
            trials="results/hpo/{synth}/{arch}/trials.csv",
        params:
            settings=lambda w: hpo_settings(w.synth, w.arch),
            embedding=TRAINING["representation"],
            train=lambda w: store(w.synth, TRAINING["hpo"]["train_split"]),
            val=lambda w: store(w.synth, TRAINING["hpo"]["val_split"]),
            out=lambda w, output: os.path.dirname(output.best),
        log:
            "logs/training/hpo/{synth}_{arch}.log",
        conda:
            "../../envs/training.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=planned_runtime("hpo", 1440),
            gpu=gpu_request(),
        shell:
            "python -m synthproxy hpo --train-store {params.train} --val-store {params.val} "
            "--embedding {params.embedding} --arch {wildcards.arch} --out-dir {params.out} "
            "--threads {threads} --settings-json {params.settings:q} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule train_encoder:
        input:
            unpack(train_inputs),
        output:
            summary="results/models/{synth}/{arch}/summary.json",
            history="results/models/{synth}/{arch}/history.csv",
        params:
            settings=lambda w, input: train_settings(w.synth, w.arch, input),
            embedding=TRAINING["representation"],
            train=lambda w: store(w.synth, TRAINING["train_split"]),
            val=lambda w: store(w.synth, TRAINING["val_split"]),
            out=lambda w, output: os.path.dirname(output.summary),
            optimizer_from=lambda w, input: f"--optimizer-from {input.hpo}" if "hpo" in input.keys() else "",
        log:
            "logs/training/train_encoder/{synth}_{arch}.log",
        conda:
            "../../envs/training.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=planned_runtime("train_encoder", 2880),
            gpu=gpu_request(),
        shell:
            "python -m synthproxy train-encoder --train-store {params.train} --val-store {params.val} "
            "--embedding {params.embedding} --arch {wildcards.arch} --out-dir {params.out} "
            "--threads {threads} --settings-json {params.settings:q} --summary {output.summary} {params.optimizer_from} "
            "> {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule evaluate_synthetic:
        input:
            summary="results/models/{synth}/{arch}/summary.json",
            test=lambda w: f"results/data/{w.synth}/{TRAINING['test_split']}.stats.json",
        output:
            "results/eval/{synth}/{arch}/synthetic.json",
        params:
            ckpt=lambda w: f"results/models/{w.synth}/{w.arch}/{TRAINING['evaluation']['checkpoint']}.pt",
            store=lambda w: store(w.synth, TRAINING["test_split"]),
            runs=TRAINING["evaluation"]["runs"],
            k=TRAINING["evaluation"]["k"],
            seed=CFG["seed"],
        log:
            "logs/training/evaluate_synthetic/{synth}_{arch}.log",
        conda:
            "../../envs/training.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=planned_runtime("evaluate_synthetic", 120),
        shell:
            "python -m synthproxy evaluate-synthetic --checkpoint {params.ckpt} --store {params.store} "
            "--n-runs {params.runs} --k {params.k} --seed {params.seed} --threads {threads} "
            "--settings-json '{{\"device\": \"cpu\"}}' --out {output} --synth {wildcards.synth} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule encoder_tables:
        input:
            scores=expand("results/eval/{synth}/{arch}/synthetic.json", synth=TRAIN_SYNTHS, arch=ARCHS),
            summaries=expand("results/models/{synth}/{arch}/summary.json", synth=TRAIN_SYNTHS, arch=ARCHS),
            histories=expand("results/models/{synth}/{arch}/history.csv", synth=TRAIN_SYNTHS, arch=ARCHS),
            hpo=expand("results/hpo/{synth}/{arch}/best_params.json", synth=TRAIN_SYNTHS, arch=ARCHS)
            if "hpo" in TRAINING
            else [],
        output:
            synthetic=report(
                "results/analysis/synthetic.csv", category="Preset encoders", caption="../report/synthetic.rst"
            ),
            synthetic_md="results/analysis/synthetic.md",
            synthetic_tex="results/analysis/synthetic.tex",
            params_csv="results/analysis/encoder_parameters.csv",
            params_md="results/analysis/encoder_parameters.md",
            params_tex="results/analysis/encoder_parameters.tex",
            curves=report(
                "results/analysis/training_curves.png",
                category="Preset encoders",
                caption="../report/training_curves.rst",
            ),
            hpo_csv="results/analysis/hpo.csv",
            hpo_md="results/analysis/hpo.md",
            hpo_tex="results/analysis/hpo.tex",
        params:
            # every configured synth, plus the shipped specs of synths not configured (Diva, TAL-NoiseMaker)
            specs=" ".join(
                f"{name}={path}"
                for name, path in {
                    **{os.path.basename(p)[:-5]: p for p in sorted(glob.glob("config/synths/*.yaml"))},
                    **{s: CFG["synths"][s]["spec"] for s in TRAIN_SYNTHS},
                }.items()
            ),
        log:
            "logs/training/encoder_tables.log",
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=planned_runtime("encoder_tables", 10),
        shell:
            "python -m synthproxy encoder-tables --scores {input.scores} --summaries {input.summaries} "
            "--histories {input.histories} --hpo {input.hpo} --specs {params.specs} "
            "--out-dir results/analysis > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
