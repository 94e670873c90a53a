"""Per-stage estimates of a run: jobs, core-hours, GPU-hours, storage, and wall-clock time on a cluster.

:func:`estimate_plan` takes a validated config (:func:`synthproxy.config.validate_config`) and a
:class:`~synthproxy.plan.costs.CostTable` and returns a :class:`Plan`: one :class:`StageEstimate` per stage
(dataset, ranking, handcrafted, hpo, training, evaluation, matching, ddsp, tables), each made of the jobs the
workflow's rules would schedule, counted as ``workflow/rules/*.smk`` count them (one render job per shard,
one HPO study per synth x encoder, ...), so the total equals ``snakemake -n``'s on a fresh directory.

Definitions. A job's *wall* time is its start-up plus its work; *core-hours* are wall x the rule's threads
(what a scheduler reserves); *GPU-hours* are the time the work keeps a GPU busy. Work runs on a GPU when the
step's device setting is ``cuda``, or ``auto`` and the planned cluster has GPUs (``Cluster.gpus_per_node``);
otherwise its CPU cost applies. Costs are linear in items: renders scale with rendered samples (duration x
rate), embeddings with the clip duration, training steps with the batch size relative to the measured one.
Every simplification that makes a figure a bound rather than an estimate is listed in the stage's ``notes``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from synthproxy.audio.learned import LEARNED_MODELS
from synthproxy.audio.registry import embedding_key, get_representation
from synthproxy.errors import ConfigError
from synthproxy.plan.costs import CostTable
from synthproxy.synths.spec import load_spec

REFERENCE_CLIP_SECONDS = 5.0
"""Duration of the clips the per-clip costs were measured on."""
REFERENCE_RATE = 44100
"""Sample rate of the reference render."""
GB = 1e9

EncoderSizer = Callable[[str, str, dict[str, Any]], int]
"""``(arch, synth, encoder overrides) -> parameter count``: lets :func:`estimate_plan` scale the measured (Table 2
size) step costs to a config's overridden sizes; the CLI passes one built on ``synthproxy.nn.factory``."""

PAPER_BATCH = {"tfm": 256}
"""The paper's batch sizes (``synthproxy.nn.factory.default_batch_size``: 512, TFM 256)."""
DEFAULT_BATCH = 512

# Defaults of the steps whose settings live in dataclasses of layers this package may not import; a test checks
# that they equal the dataclasses' (tests/test_plan.py).
FIT_DEFAULTS: dict[str, Any] = {"validations_per_epoch": 1}
MATCHING_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 30, "batch_size": 64, "validate_every": 5, "val_presets": 64}
FINETUNE_DEFAULTS: dict[str, Any] = {"epochs": 20, "batch_size": 64, "eval_runs": 20, "eval_k": 256}
DDSP_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 40, "batch_size": 32, "validate_every": 5, "val_size": 64}
DDSP_STATIC_VARIANTS = ("raw_env", "fx_env")
DDSP_PARAM_ONLY = ("ploss", "conv2d")
DDSP_SPLIT = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Cluster:
    """Where the run is planned: ``nodes`` nodes of ``cores_per_node`` cores and ``gpus_per_node`` GPUs."""

    nodes: int = 1
    cores_per_node: int = 16
    gpus_per_node: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.cores_per_node < 1 or self.gpus_per_node < 0:
            raise ConfigError(f"cluster: need nodes >= 1, cores per node >= 1 and GPUs per node >= 0; got "
                              f"{self.nodes}, {self.cores_per_node}, {self.gpus_per_node}")

    @property
    def cores(self) -> int:
        return self.nodes * self.cores_per_node

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass
class JobGroup:
    """``count`` identical jobs of one rule: each ``wall`` s (of which ``gpu`` s keep a GPU busy) on ``threads``."""

    rule: str
    count: int
    wall: float
    gpu: float = 0.0
    threads: int = 1
    storage: float = 0.0
    """bytes written by all ``count`` jobs together"""


@dataclass
class StageEstimate:
    """One stage's jobs and their totals."""

    name: str
    groups: list[JobGroup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def core_hours(self) -> float:
        return sum(g.count * g.wall * g.threads for g in self.groups) / 3600

    @property
    def gpu_hours(self) -> float:
        return sum(g.count * g.gpu for g in self.groups) / 3600

    @property
    def storage_gb(self) -> float:
        return sum(g.storage for g in self.groups) / GB

    @property
    def longest_job_hours(self) -> float:
        return max((g.wall for g in self.groups if g.count), default=0.0) / 3600

    def rules(self) -> dict[str, int]:
        """Jobs per rule (as Snakemake's "Job stats" table lists them)."""
        out: dict[str, int] = {}
        for g in self.groups:
            out[g.rule] = out.get(g.rule, 0) + g.count
        return out

    def wall_hours(self, cluster: Cluster) -> float:
        """Lower bound of the stage's duration: its core-hours over every core, its GPU-hours over every GPU, or
        its longest job, whichever is largest (jobs packed perfectly)."""
        gpu = self.gpu_hours / cluster.gpus if cluster.gpus else 0.0
        return max(self.core_hours / cluster.cores, gpu, self.longest_job_hours)


@dataclass
class Plan:
    """Every stage of a config's run on a cluster."""

    stages: list[StageEstimate]
    cluster: Cluster
    provenance: list[str] = field(default_factory=list)

    def stage(self, name: str) -> StageEstimate:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def jobs(self) -> int:
        return sum(s.jobs for s in self.stages)

    def rules(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stages:
            for rule, n in s.rules().items():
                out[rule] = out.get(rule, 0) + n
        return out

    def totals(self) -> dict[str, float]:
        return {"jobs": self.jobs, "core_hours": sum(s.core_hours for s in self.stages),
                "gpu_hours": sum(s.gpu_hours for s in self.stages),
                "storage_gb": sum(s.storage_gb for s in self.stages),
                "wall_hours": sum(s.wall_hours(self.cluster) for s in self.stages)}


# ---------------------------------------------------------------------------------------------- helpers
class _Context:
    """What every stage reads: the config, the cost table, the cluster, per-synth specs and settings."""

    def __init__(self, cfg: dict[str, Any], costs: CostTable, cluster: Cluster, base: Path,
                 sizer: EncoderSizer | None) -> None:
        self.cfg, self.costs, self.cluster, self.base, self.sizer = cfg, costs, cluster, base, sizer
        self.startup = costs.value("jobs", "startup_seconds")
        self._specs: dict[str, Any] = {}
        self._dims: dict[tuple[str, str, int], int] = {}
        self._scales: dict[tuple[str, str], float] = {}

    def parameters(self, arch: str, synth: str) -> tuple[int, int]:
        """(measured Table 2 size, the config's size) of ``arch`` on ``synth`` in parameters."""
        table = self.costs.get("training", arch, "parameters", hint=f" (architecture '{arch}')")
        if synth not in table:
            raise ConfigError(f"{self.costs.where}: no cost entry 'training.{arch}.parameters.{synth}' (measure it "
                              "with benchmarks/measure_costs.py or add it by hand)")
        overrides = dict((self.cfg.get("training", {}).get("archs", {}).get(arch) or {}).get("encoder") or {})
        if not overrides or self.sizer is None:
            return int(table[synth]), int(table[synth])
        return int(table[synth]), int(self.sizer(arch, synth, overrides))

    def size_scale(self, arch: str, synth: str) -> float:
        """Config size / measured size of the encoder: step and forward costs scale with the parameter count."""
        if (arch, synth) not in self._scales:
            measured, configured = self.parameters(arch, synth)
            self._scales[arch, synth] = configured / max(measured, 1)
        return self._scales[arch, synth]

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else self.base / q

    def spec(self, synth: str) -> Any:
        if synth not in self._specs:
            self._specs[synth] = load_spec(self.path(self.cfg["synths"][synth]["spec"]))
        return self._specs[synth]

    def render_settings(self, synth: str) -> dict[str, Any]:
        return dict(self.cfg["render"]) | dict(self.cfg["synths"][synth].get("render", {}))

    def on_gpu(self, device: Any) -> bool:
        """Whether work with this device setting runs on a GPU of the planned cluster."""
        d = str(device or "cpu").lower()
        return d.startswith("cuda") or (d == "auto" and self.cluster.gpus > 0)

    def rep_cost(self, rep: dict[str, Any], duration: float) -> tuple[float, float]:
        """(CPU s, GPU s) to embed one clip of ``duration`` seconds with ``rep``."""
        name = rep["name"]
        scale = duration / REFERENCE_CLIP_SECONDS
        opts = rep.get("options", {}) or {}
        # EfficientAT models default to device "auto"; the hand-crafted models have no device option
        device = opts.get("device", "auto" if name in LEARNED_MODELS else "cpu")
        if self.on_gpu(device) and self.costs.has("representations", name, "gpu_seconds"):
            return 0.0, scale * self.costs.value("representations", name, "gpu_seconds")
        return scale * self.costs.value("representations", name, "cpu_seconds",
                                        hint=" (an audio model of the config)"), 0.0

    def rep_rate(self, rep: dict[str, Any]) -> int:
        return int(get_representation(rep["name"], **(rep.get("options") or {})).sample_rate)

    def embedding_dim(self, rep: dict[str, Any], n_samples: int) -> int:
        """Size of ``rep``'s stored vector for clips of ``n_samples`` samples (computed on silence)."""
        key = (embedding_key(rep), repr(sorted((rep.get("options") or {}).items())), n_samples)
        if key not in self._dims:
            opts = dict(rep.get("options") or {})
            quiet = logging.getLogger("synthproxy.audio.efficientat")
            level = quiet.level
            if rep["name"] in LEARNED_MODELS:  # the size does not depend on the weights: never load them
                opts |= {"random_weights": True, "device": "cpu", "weights": None, "allow_download": False}
                quiet.setLevel(logging.ERROR)  # (no "random weights" warning: they are meant here)
            try:
                self._dims[key] = int(get_representation(rep["name"], **opts).dim(n_samples, rep["reduction"]))
            finally:
                quiet.setLevel(level)
        return self._dims[key]

    def render_cost(self, synth: str, sample_rate: int, duration: float) -> float:
        """CPU seconds of one render of ``synth`` at ``sample_rate`` for ``duration`` seconds."""
        ref = self.costs.value("render", synth, "render_seconds", hint=f" (synth '{synth}' of the config)")
        return ref * (duration / REFERENCE_CLIP_SECONDS) * (sample_rate / REFERENCE_RATE)

    def preset_costs(self, synth: str, reps: list[dict[str, Any]]) -> dict[str, float]:
        """Per kept preset of ``synth`` embedded with ``reps``: CPU and GPU seconds, candidates, stored bytes."""
        r = self.render_settings(synth)
        duration = float(r["duration"])
        rates = list(dict.fromkeys(self.rep_rate(rep) for rep in reps)) or [REFERENCE_RATE]
        rejected = self.costs.value("render", synth, "rejected_per_preset")
        candidates = 1.0 + rejected
        overhead = self.costs.value("render", synth, "overhead_seconds")
        cpu = candidates * (self.render_cost(synth, rates[0], duration) + overhead)
        cpu += sum(self.render_cost(synth, sr, duration) for sr in rates[1:])
        gpu = 0.0
        dims = 0
        for rep in reps:
            c, g = self.rep_cost(rep, duration)
            cpu, gpu = cpu + c, gpu + g
            dims += self.embedding_dim(rep, round(duration * self.rep_rate(rep)))
        # presets (float32), embeddings (float32), rms (float32), attempts (uint16)
        row_bytes = 4 * self.spec(synth).n_params + 4 * dims + 4 + 2
        return {"cpu": cpu, "gpu": gpu, "candidates": candidates, "bytes": row_bytes}

    def train_step(self, arch: str, synth: str, batch: int, device: Any) -> tuple[float, float]:
        """(CPU s, GPU s) of one optimiser step of ``arch`` on ``synth``'s layout at ``batch``."""
        ref = int(self.costs.get("training", arch, "batch_size", hint=f" (architecture '{arch}')"))
        scale = batch / ref * self.size_scale(arch, synth)
        if self.on_gpu(device):
            return 0.0, scale * self.costs.value("training", arch, "gpu_step_seconds", synth,
                                                 hint=f" (architecture '{arch}' on synth '{synth}')")
        return scale * self.costs.value("training", arch, "cpu_step_seconds", synth,
                                        hint=f" (architecture '{arch}' on synth '{synth}')"), 0.0

    def forward(self, arch: str, synth: str, presets: float, device: Any) -> tuple[float, float]:
        """(CPU s, GPU s) of predicting ``presets`` embeddings with ``arch``."""
        presets = presets * self.size_scale(arch, synth)
        if self.on_gpu(device):
            return 0.0, presets * self.costs.value("training", arch, "gpu_forward_seconds", synth,
                                                   hint=f" (architecture '{arch}' on synth '{synth}')")
        return presets * self.costs.value("training", arch, "cpu_forward_seconds", synth,
                                          hint=f" (architecture '{arch}' on synth '{synth}')"), 0.0

    def retrieval(self, runs: int, k: int, dim: int) -> float:
        """CPU seconds of ``runs`` evaluation runs on pools of ``k`` presets of ``dim``-d embeddings."""
        ref = self.costs.get("retrieval", "reference")
        per_run = self.costs.value("retrieval", "run_seconds") * (k / ref["k"]) ** 2 * (dim / ref["dim"])
        return runs * per_run

    def handcrafted_presets(self, synth: str) -> float:
        """Hand-crafted presets of ``synth`` (scaled to ``max_files``), from the cost table's counts."""
        src = self.cfg["handcrafted"]["synths"][synth]
        files = self.costs.value("handcrafted", synth, "files", hint=f" (hand-crafted collection of '{synth}')")
        presets = self.costs.value("handcrafted", synth, "presets")
        if src.get("max_files"):
            return presets * min(1.0, src["max_files"] / max(files, 1.0))
        return presets

    def job(self, rule: str, count: int, cpu: float = 0.0, gpu: float = 0.0, threads: int = 1,
            storage: float = 0.0) -> JobGroup:
        """``count`` jobs of ``rule`` doing ``cpu`` + ``gpu`` seconds of work each, after the start-up."""
        return JobGroup(rule, int(count), self.startup + cpu + gpu, gpu, threads, storage)


def _batch(arch: str, settings: dict[str, Any]) -> int:
    return int(settings.get("batch_size") or PAPER_BATCH.get(arch, DEFAULT_BATCH))


def _sizes_note(c: _Context) -> list[str]:
    over = sorted(a for a, s in c.cfg["training"].get("archs", {}).items() if s.get("encoder"))
    if not over:
        return []
    if c.sizer is None:
        return [f"encoder overrides of {', '.join(over)} are not modelled: their cost is that of Table 2's sizes "
                "(an upper bound for scaled-down encoders)"]
    return [f"encoder overrides of {', '.join(over)}: Table 2 step costs scaled by the parameter count"]


# ---------------------------------------------------------------------------------------------- stages
def _dataset(c: _Context) -> StageEstimate:
    st = StageEstimate("dataset")
    ds = c.cfg.get("dataset")
    reps = c.cfg.get("representations", [])
    splits = ds["splits"] if ds else {}
    for synth in c.cfg["synths"]:
        if not splits:
            break
        per = c.preset_costs(synth, reps)
        for s in splits.values():
            size, shard = int(s["size"]), int(s["shard_size"])
            full, rest = divmod(size, shard)
            st.groups.append(c.job("init_store", 1))
            st.groups.append(c.job("render_shard", full, cpu=shard * per["cpu"], gpu=shard * per["gpu"],
                                   storage=full * shard * per["bytes"]))
            if rest:
                st.groups.append(c.job("render_shard", 1, cpu=rest * per["cpu"], gpu=rest * per["gpu"],
                                       storage=rest * per["bytes"]))
            st.groups.append(c.job("finalize_split", 1))
    st.groups.append(c.job("dataset_summary", 1))
    if splits:
        st.notes.append("storage: uncompressed float32 presets + embeddings + rms + attempts per preset")
        rej = {s: c.costs.value("render", s, "rejected_per_preset") for s in c.cfg["synths"]}
        st.notes.append("rejected candidates per kept preset (RMS filter): "
                        + ", ".join(f"{s} {v:.2f}" for s, v in rej.items()))
    return st


def _ranking_groups(c: _Context, synth: str) -> int:
    rk = c.cfg["ranking"]
    path = c.path(rk["synths"][synth])
    if not path.is_file():
        raise ConfigError(f"ranking.synths.{synth}: file not found: {rk['synths'][synth]}")
    raw = yaml.safe_load(path.read_text()) or {}

    def slug(name: str) -> str:  # as synthproxy.pipeline.ranking.slug
        return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")

    names = [slug(g["name"]) for g in raw.get("groups", [])]
    chosen = rk.get("groups")
    return len(names) if chosen is None else len([n for n in names if n in {slug(x) for x in chosen}])


def _ranking(c: _Context) -> StageEstimate:
    st = StageEstimate("ranking")
    rk = c.cfg.get("ranking")
    if not rk:
        return st
    reps = rk["representations"]
    n_red = len(rk["reductions"])
    for synth in rk["synths"]:
        groups = _ranking_groups(c, synth)
        r = c.render_settings(synth)
        duration = float(r["duration"])
        rates = list(dict.fromkeys(c.rep_rate(rep) for rep in reps))
        rejected = c.costs.value("render", synth, "rejected_per_preset")
        clips = rk["presets_per_group"] * rk["steps"]
        cpu = rk["presets_per_group"] * (1 + rejected) * c.render_cost(synth, rates[0], duration)
        cpu += clips * sum(c.render_cost(synth, sr, duration) for sr in rates)
        gpu = 0.0
        for rep in reps:
            rc, rg = c.rep_cost(rep, duration)
            cpu, gpu = cpu + n_red * clips * rc, gpu + n_red * clips * rg
        st.groups.append(c.job("ranking_group", groups, cpu=cpu, gpu=gpu))
        st.groups.append(c.job("ranking_summary", 1))
    if n_red > 1:
        st.notes.append(f"every representation is costed once per reduction ({n_red}): an upper bound")
    return st


def _handcrafted(c: _Context) -> StageEstimate:
    st = StageEstimate("handcrafted")
    hc = c.cfg.get("handcrafted")
    if not hc:
        return st
    reps = c.cfg.get("representations", [])
    shards = int(hc["shards"])
    fetch = False
    for synth, src in hc["synths"].items():
        presets = c.handcrafted_presets(synth)
        per = c.preset_costs(synth, reps)
        # hand-crafted presets are rendered once each (silent ones are dropped, not replaced)
        cpu = per["cpu"] - (per["candidates"] - 1) * (
            c.render_cost(synth, c.rep_rate(reps[0]) if reps else REFERENCE_RATE,
                          float(c.render_settings(synth)["duration"]))
            + c.costs.value("render", synth, "overhead_seconds"))
        st.groups.append(c.job("import_handcrafted", 1))
        st.groups.append(c.job("render_handcrafted", shards, cpu=presets / shards * cpu,
                               gpu=presets / shards * per["gpu"], storage=presets * (per["bytes"] + 100)))
        st.groups.append(c.job("finalize_handcrafted", 1))
        if src["format"] == "dx7_sysex" and not c.path(src["path"]).is_dir() and src.get("fetch"):
            fetch = True
    if fetch:
        st.groups.append(c.job("fetch_dx7_cartridges", 1))
    st.groups.append(c.job("handcrafted_import_table", 1))
    if c.cfg.get("distribution"):
        st.groups.append(c.job("distribution", 1))
        st.notes.append("distribution (UMAP, Wasserstein): start-up only, its work is not costed")
    st.notes.append("presets: the cost table's distinct-preset counts (before the RMS filter), scaled to max_files")
    return st


def _hpo_trials(hpo: dict[str, Any], synth: str) -> int:
    if hpo.get("n_trials"):
        return int(hpo["n_trials"])
    spaces = yaml.safe_load((resources.files("synthproxy") / "proxy" / "hpo_spaces.yaml").read_text())
    d = spaces["defaults"]
    space = hpo["space"]
    if space == "auto":
        space = "opt" if synth in d.get("optimizer_only_synths", []) else "all"
    return int(d["n_trials"][space])


def _hpo(c: _Context) -> StageEstimate:
    st = StageEstimate("hpo")
    tr = c.cfg.get("training")
    if not tr or "hpo" not in tr:
        return st
    hpo = tr["hpo"]
    splits = c.cfg["dataset"]["splits"]
    n_train, n_val = splits[hpo["train_split"]]["size"], splits[hpo["val_split"]]["size"]
    for synth in c.cfg["synths"]:
        trials = _hpo_trials(hpo, synth)
        for arch, a in tr["archs"].items():
            bs = _batch(arch, a)
            steps = n_train // bs
            sc, sg = c.train_step(arch, synth, bs, tr["device"])
            fc, fg = c.forward(arch, synth, n_val, tr["device"])
            st.groups.append(c.job("hpo", 1, cpu=trials * (steps * sc + fc), gpu=trials * (steps * sg + fg),
                                   threads=2))
    st.notes.append("every trial trains one full epoch (pruned trials stop earlier: an upper bound); trials of "
                    "the 'all' space are costed at Table 2 sizes")
    st.notes += _sizes_note(c)
    return st


def _checkpoint_bytes(c: _Context, arch: str, synth: str) -> float:
    # best_mrr.pt + best_l1.pt (weights) + last.pt (weights and Adam's two moments), float32
    return 4.0 * c.parameters(arch, synth)[1] * 5


def _training(c: _Context) -> StageEstimate:
    st = StageEstimate("training")
    tr = c.cfg.get("training")
    if not tr:
        return st
    splits = c.cfg["dataset"]["splits"]
    n_train, n_val = splits[tr["train_split"]]["size"], splits[tr["val_split"]]["size"]
    vals = int((tr.get("settings") or {}).get("validations_per_epoch", FIT_DEFAULTS["validations_per_epoch"]))
    for synth in c.cfg["synths"]:
        for arch, a in tr["archs"].items():
            bs = _batch(arch, a)
            steps = tr["epochs"] * (n_train // bs)
            sc, sg = c.train_step(arch, synth, bs, tr["device"])
            fc, fg = c.forward(arch, synth, tr["epochs"] * vals * n_val, tr["device"])
            st.groups.append(c.job("train_encoder", 1, cpu=steps * sc + fc, gpu=steps * sg + fg, threads=2,
                                   storage=_checkpoint_bytes(c, arch, synth)))
    st.notes += _sizes_note(c)
    return st


def _dim(c: _Context, key: str) -> int:
    for rep in c.cfg.get("representations", []):
        if embedding_key(rep) == key:
            synth = next(iter(c.cfg["synths"]))
            duration = float(c.render_settings(synth)["duration"])
            return c.embedding_dim(rep, round(duration * c.rep_rate(rep)))
    raise ConfigError(f"training.representation: '{key}' is not stored")


def _evaluation(c: _Context) -> StageEstimate:
    st = StageEstimate("evaluation")
    tr = c.cfg.get("training")
    if not tr:
        return st
    ev = tr["evaluation"]
    n_test = c.cfg["dataset"]["splits"][tr["test_split"]]["size"]
    dim = _dim(c, tr["representation"])
    hc = c.cfg.get("handcrafted", {}).get("synths", {})
    for synth in c.cfg["synths"]:
        for arch in tr["archs"]:
            cpu, _ = c.forward(arch, synth, n_test, "cpu")
            cpu += c.retrieval(ev["runs"], min(ev["k"], n_test), dim)
            st.groups.append(c.job("evaluate_synthetic", 1, cpu=cpu, threads=2))
            if synth in hc:
                n_hc = c.handcrafted_presets(synth)
                cpu, _ = c.forward(arch, synth, n_hc, "cpu")
                cpu += c.retrieval(ev["runs"], int(min(ev["k"], n_hc)), dim)
                st.groups.append(c.job("evaluate_handcrafted", 1, cpu=cpu, threads=2))
    st.groups.append(c.job("encoder_tables", 1))
    if any(s in hc for s in c.cfg["synths"]):
        st.groups.append(c.job("handcrafted_table", 1))
    st.notes.append("evaluation runs on the CPU (the rules force it); retrieval cost scales as k^2 x dim")
    return st


def _matching(c: _Context) -> StageEstimate:
    st = StageEstimate("matching")
    ood = c.cfg.get("out_of_domain")
    if ood:
        st.groups += [c.job("build_out_of_domain", 1), c.job("out_of_domain_summary", 1)]
        st.notes.append("out-of-domain set (FluidSynth renders): start-up only, its work is not costed")
    m, tr = c.cfg.get("matching"), c.cfg.get("training")
    if not m or not tr:
        return st
    models = _matching_models(m)
    t = MATCHING_TRAIN_DEFAULTS | dict(m.get("train", {}))
    ft = FINETUNE_DEFAULTS | dict(m.get("finetune", {}))
    frac = c.cfg["handcrafted"]["split_fractions"]
    archs = list(tr["archs"]) if m["proxy_arch"] == "best" else [m["proxy_arch"]]
    metric_names = [x for x in m["evaluation"]["metrics"] if x != "a_mean"]
    est = m["estimator"]["name"]
    for synth, overrides in m["synths"].items():
        ts = t | dict(overrides or {})
        device = ts.get("device", "auto")
        n_hc = c.handcrafted_presets(synth)
        sizes = {s: n_hc * f for s, f in zip(("train", "val", "test"), frac, strict=True)}
        for s in sizes:
            if m["presets"].get(s):
                sizes[s] = min(sizes[s], m["presets"][s])
        r = c.render_settings(synth)
        render = c.render_cost(synth, REFERENCE_RATE, float(r["duration"]))
        feature = c.rep_cost({"name": "mel128"}, float(r["duration"]))[0]
        judge = render + sum(c.costs.value("metrics", x, "cpu_seconds", hint=" (matching.evaluation.metrics)")
                             for x in metric_names)
        st.groups.append(c.job("matching_features", 1, cpu=sum(sizes.values()) * (render + feature)))
        # proxy finetuning: the most expensive candidate proxy (the choice is made after training)
        worst = max(archs, key=lambda a: c.train_step(a, synth, ft["batch_size"], "cpu")[0])
        sc, sg = c.train_step(worst, synth, ft["batch_size"], ft.get("device", "auto"))
        steps = ft["epochs"] * max(1, int(sizes["train"] // ft["batch_size"]))
        st.groups.append(c.job("finetune_proxy", 1, cpu=steps * sc, gpu=steps * sg, threads=2))
        gpu_est = c.on_gpu(device)
        step = c.costs.value("estimators", est, "gpu_step_seconds" if gpu_est else "cpu_step_seconds",
                             hint=" (matching.estimator.name)")
        n_train, n_val = sizes["train"], min(sizes["val"], ts["val_presets"] or sizes["val"])
        validations = math.ceil(ts["epochs"] / ts["validate_every"])
        for uses_proxy in models.values():
            work = ts["epochs"] * n_train * step
            if uses_proxy:  # forward + backward through the frozen proxy: about one training step per preset
                pc, pg = c.train_step(worst, synth, 1, device)
                work += ts["epochs"] * n_train * (pc + pg)
            val = validations * n_val * judge
            st.groups.append(JobGroup("train_estimator", 1, c.startup + work + val, work if gpu_est else 0.0, 2))
        n_eval = sizes["test"] + (m["evaluation"].get("out_of_domain") or 0)
        st.groups.append(c.job("evaluate_matching", len(models), cpu=n_eval * (judge + step), threads=2))
    st.groups.append(c.job("matching_tables", 1))
    if m["estimator"].get("options"):
        st.notes.append("matching.estimator.options are not modelled: estimators are costed at the paper's sizes")
    st.notes.append("hand-crafted split sizes from the collected counts x split_fractions (before the RMS filter)")
    return st


def _matching_models(m: dict[str, Any]) -> dict[str, bool]:
    """Estimator name -> whether it trains through the proxy (as synthproxy.matching.datasets.matching_models)."""
    out: dict[str, bool] = {}
    for name, entry in m["strategies"].items():
        audio = entry.get("weights", {}).get("audio", 0.0)
        uses = any(w != 0 for _, w in audio) if isinstance(audio, list) else audio != 0
        if uses:
            out |= {f"{name}_{r}": True for r in m["relaxations"]}
        else:
            out[name] = False
    return out


def _ddsp_models(d: dict[str, Any], variant: str) -> list[str]:
    """Estimator names of a DDSP variant (as synthproxy.matching.ddsp_data.ddsp_models)."""
    out = list(d["strategies"])
    if variant in DDSP_STATIC_VARIANTS:
        out.append("conv2d")
    if variant == "fx_env" and d.get("proxy"):
        out += ["proxy_emb", "exact_emb"]
    return out


def _ddsp(c: _Context) -> StageEstimate:
    st = StageEstimate("ddsp")
    d = c.cfg.get("ddsp")
    if not d:
        return st
    t = DDSP_TRAIN_DEFAULTS | dict(d.get("train", {}))
    device = t.get("device", "auto")
    gpu = c.on_gpu(device)
    size = int(d["size"])
    n_train, n_test = size * DDSP_SPLIT[0], size * DDSP_SPLIT[2]
    ood = d["evaluation"].get("out_of_domain") or 0
    feature = c.rep_cost({"name": "mel16k"}, float(d["duration"]))[0]
    metrics = sum(c.costs.value("metrics", x, "cpu_seconds", hint=" (ddsp.evaluation.metrics)")
                  for x in d["evaluation"]["metrics"])
    est = c.costs.value("estimators", "gru", "gpu_step_seconds" if gpu else "cpu_step_seconds")
    for v in d["variants"]:
        fwd = c.costs.value("ddsp", v, "cpu_forward_seconds", hint=f" (ddsp.variants: {v})")
        bwd = c.costs.value("ddsp", v, "gpu_backward_seconds" if gpu else "cpu_backward_seconds")
        st.groups.append(c.job("ddsp_data", 1, cpu=size * (fwd + feature)))
        n_val = min(t["val_size"] or size * DDSP_SPLIT[1], size * DDSP_SPLIT[1])
        val = math.ceil(t["epochs"] / t["validate_every"]) * n_val * (fwd + metrics)
        for model in _ddsp_models(d, v):
            per = est + (0.0 if model in DDSP_PARAM_ONLY else bwd)
            work = t["epochs"] * n_train * per
            st.groups.append(JobGroup("ddsp_train", 1, c.startup + work + val, work if gpu else 0.0, 2))
            st.groups.append(c.job("ddsp_evaluate", 1, cpu=(n_test + ood) * (fwd + metrics + est), threads=2))
    st.groups += [c.job("ddsp_benchmark", 1), c.job("ddsp_tables", 1)]
    tr = c.cfg.get("training")
    if d.get("proxy") and "fx_env" in d["variants"] and tr:
        proxy = d["proxy"]
        epochs = int(proxy.get("epochs", tr["epochs"]))
        archs = list(tr["archs"]) if proxy.get("arch", "best") == "best" else [proxy["arch"]]
        synth = min(c.cfg["synths"], key=lambda s: c.spec(s).n_params)  # the DDSP layout is not in the table
        bs = int(proxy.get("batch_size", 0)) or None
        work_c = work_g = 0.0
        for arch in archs:
            b = bs or _batch(arch, tr["archs"][arch])
            sc, sg = c.train_step(arch, synth, b, tr["device"])
            work_c, work_g = max(work_c, epochs * (n_train // b) * sc), max(work_g, epochs * (n_train // b) * sg)
        st.groups += [c.job("ddsp_proxy", 1, cpu=work_c, gpu=work_g, threads=2), c.job("proxy_gradients", 1),
                      c.job("proxy_gradients_table", 1)]
        st.notes.append(f"the DDSP proxy is costed with {synth}'s layout (the nearest measured one)")
    if d["estimator"].get("options"):
        st.notes.append("ddsp.estimator.options are not modelled: the GRU is costed at the paper's sizes")
    st.notes.append("f0 tracking (pyin) of the f0 variants and the Sec. IV benchmark are not costed")
    return st


def _tables(c: _Context) -> StageEstimate:
    st = StageEstimate("tables")
    st.groups.append(c.job("collect_tables", 1))
    return st


STAGES = (_dataset, _ranking, _handcrafted, _hpo, _training, _evaluation, _matching, _ddsp, _tables)


def estimate_plan(cfg: dict[str, Any], costs: CostTable, cluster: Cluster | None = None,
             base_dir: str | Path = ".", encoder_sizer: EncoderSizer | None = None) -> Plan:
    """The :class:`Plan` of a validated config on ``cluster`` (default: one node, 16 cores, one GPU).

    ``base_dir`` is where the config's relative paths (specs, ranking groups, hand-crafted folders) resolve;
    ``encoder_sizer`` (see :data:`EncoderSizer`) scales the costs of encoders whose sizes the config overrides
    (without it they are costed at Table 2's sizes, an upper bound for scaled-down encoders).
    Raises :class:`~synthproxy.errors.ConfigError` naming the cost entry a config needs and the table lacks.
    """
    cluster = cluster or Cluster()
    c = _Context(cfg, costs, cluster, Path(base_dir), encoder_sizer)
    return Plan([stage(c) for stage in STAGES], cluster, costs.provenance())


# ---------------------------------------------------------------------------------------------- report
def _fmt_hours(h: float) -> str:
    if h == 0:
        return "0"
    if h < 1 / 60:
        return f"{h * 3600:.0f} s"
    if h < 1:
        return f"{h * 60:.1f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} d"


def _fmt_num(x: float) -> str:
    if x == 0:
        return "0"
    if x < 0.1:
        return f"{x:.3f}"
    if x < 10:
        return f"{x:.2f}"
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def format_plan(plan: Plan, title: str = "") -> str:
    """The plan as text: one row per stage (jobs, core-hours, GPU-hours, storage, wall-clock) and the totals."""
    cl = plan.cluster
    head = f"{'stage':<12}{'jobs':>7}{'core-h':>12}{'GPU-h':>10}{'storage GB':>12}{'longest job':>13}{'wall':>11}"
    lines = [title] if title else []
    lines += [f"cluster: {cl.nodes} node(s) x {cl.cores_per_node} cores"
              + (f" + {cl.gpus_per_node} GPU(s)" if cl.gpus_per_node else ", no GPU")
              + " (device auto -> " + ("GPU" if cl.gpus else "CPU") + ")", "", head, "-" * len(head)]
    for s in plan.stages:
        if not s.jobs:
            continue
        lines.append(f"{s.name:<12}{s.jobs:>7}{_fmt_num(s.core_hours):>12}{_fmt_num(s.gpu_hours):>10}"
                     f"{_fmt_num(s.storage_gb):>12}{_fmt_hours(s.longest_job_hours):>13}"
                     f"{_fmt_hours(s.wall_hours(cl)):>11}")
    t = plan.totals()
    lines += ["-" * len(head),
              f"{'total':<12}{int(t['jobs']):>7}{_fmt_num(t['core_hours']):>12}{_fmt_num(t['gpu_hours']):>10}"
              f"{_fmt_num(t['storage_gb']):>12}{'':>13}{_fmt_hours(t['wall_hours']):>11}", ""]
    lines.append("wall: max(core-h / cores, GPU-h / GPUs, longest job) per stage, stages one after another "
                 "(jobs packed perfectly: a lower bound per stage)")
    notes = [(s.name, n) for s in plan.stages if s.jobs for n in s.notes]
    if notes:
        lines += ["", "notes:"] + [f"  {name}: {n}" for name, n in notes]
    if plan.provenance:
        lines += ["", "costs:"] + [f"  {p}" for p in plan.provenance]
    return "\n".join(lines)
