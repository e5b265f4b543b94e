"""Each workflow run's train config (the values of `iseat train --set`), built in layers from the workflow
config: all runs < the setting < the fine-tuning protocol < the method < the setting's per-method values <
the tuned lambda/gamma < data paths, seed and start checkpoint.

`RunConfigs` takes the workflow config as validated by workflow/schemas/config.schema.yaml (defaults filled
in) with the method catalog merged into `methods`; it reads nothing else and writes nothing.
"""

from __future__ import annotations

import shlex

import yaml

from iseat.training.config import DEFAULTS, deep_merge
from iseat.workflow import cluster

RESOURCE_DEFAULTS = {
    "train": {"gpu": 1, "threads": 8, "mem_mb": 16000, "runtime": 1440, "partition": ""},
    "finetune": {"gpu": 1, "threads": 8, "mem_mb": 16000, "runtime": 720, "partition": ""},
    "evaluate": {"gpu": 1, "threads": 4, "mem_mb": 16000, "runtime": 720, "partition": ""},
    "light": {"gpu": 0, "threads": 1, "mem_mb": 4000, "runtime": 60, "partition": ""},
}
TRAINING_KINDS = ("train", "finetune")  # the resource kinds of training jobs (`gpus_per_run` applies)


def lambda_schedule(lam: float, warmup: bool):
    """The regulariser weight lambda of a run: with the warm-up, 0 in the first lr stage and `lam` after
    (a per-stage list [0, lam]); without it, `lam` throughout."""
    return [0.0, float(lam)] if warmup else float(lam)


def tuned_method(keys, lam, gamma, warmup: bool) -> dict:
    """The `method` values a run takes of a tuned (lambda, gamma) pair: those in `keys`, lambda with its
    warm-up where `warmup` says so."""
    values = {}
    if "lam" in keys:
        values["lam"] = lambda_schedule(lam, warmup)
    if "gamma" in keys:
        values["gamma"] = float(gamma)
    return values


def number(x) -> str:
    """How a grid value is written in a path: 0.1 -> '0.1', 0.007 -> '0.007'."""
    return format(float(x), "g")


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested mappings -> {'section.key': value}; an empty mapping stays a value."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def yaml_value(value) -> str:
    """A value as one line of flow-style YAML (what `iseat train --set key=VALUE` parses back)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def set_args(tree: dict) -> str:
    """`key=value` arguments of `iseat train --set`, sorted so equal configs give equal commands."""
    flat = flatten(tree)
    return " ".join(shlex.quote(f"{key}={yaml_value(flat[key])}") for key in sorted(flat))


class RunConfigs:
    """The train overrides, resources and devices of every run of one workflow config."""

    def __init__(self, config: dict):
        self.config = config
        self.settings = config["settings"]
        self.methods = config["methods"]
        self.results = config["results_dir"].rstrip("/")
        self.data_root = config["data_root"].rstrip("/")

    # ------------------------------------------------------------------------- names and paths

    def base_of(self, setting: str) -> str | None:
        return self.settings[setting].get("finetune", {}).get("base")

    def run_dir(self, setting: str, method: str, seed) -> str:
        return f"{self.results}/{setting}/{method}/seed{seed}"

    def uses_grid_winner(self, setting: str, method: str) -> bool:
        tuned = self.settings[setting].get("tuned", {})
        return bool(self.methods[method].get("tuned")) and tuned.get("source", "pinned") == "grid"

    # ------------------------------------------------------------------------- resources and devices

    def job_resources(self, kind: str, setting: str | None = None) -> dict:
        """A job's resources: the defaults < the config's `resources` < the setting's; a training's GPUs
        are the setting's `gpus_per_run` where it names them."""
        resources = deep_merge(
            RESOURCE_DEFAULTS[kind],
            self.config["resources"].get(kind),
            self.settings[setting].get("resources", {}).get(kind) if setting else None,
        )
        if setting and kind in TRAINING_KINDS:
            resources["gpu"] = cluster.training_gpus(self.config, setting, resources["gpu"])
        return resources

    def job_device(self, kind: str, setting: str | None = None) -> str:
        """The device given to a job's command: CUDA when the job asks for a GPU (the command then fails
        fast on a node without a usable one), else the CPU. A config's own runtime.device (its `train`
        blocks) wins, for evaluations and analyses too."""
        train = deep_merge(self.config.get("train"), self.settings[setting].get("train") if setting else None)
        return train.get("runtime", {}).get("device") or (
            "cuda" if self.job_resources(kind, setting)["gpu"] > 0 else "cpu"
        )

    def step_timing_options(self) -> str:
        """`iseat benchmark step` options of the config's `step_timing` (Tab. 4's time column): the model of
        its setting (the paper's WRN34-10) at its batch size; '' without a `step_timing` block."""
        timing = self.config.get("step_timing")
        if not timing:
            return ""
        model = deep_merge(DEFAULTS, self.config.get("train"), self.settings[timing["setting"]].get("train"))["model"]
        return (
            f"--model {model['arch']} --batch-size {timing.get('batch_size', 128)} "
            f"--repeats {timing.get('repeats', 10)} --warmup {timing.get('warmup', 2)}"
        )

    def device_layer(self, kind: str, setting: str | None = None) -> dict:
        return {"runtime": {"device": self.job_device(kind, setting)}}

    # ------------------------------------------------------------------------- train overrides

    def data_overrides(self, setting: str) -> dict:
        s = self.settings[setting]
        data = {"dataset": s["dataset"], "root": f"{self.data_root}/{s['dataset']}"}
        if s.get("extra"):
            data["extra"] = f"{self.data_root}/{s['extra']}"
        return {"data": data}

    def lam_warmup(self, setting: str, method: str) -> bool:
        """Whether the run's lambda warms up: full trainings (not fine-tuning), unless the setting turns it off."""
        return self.methods[method]["kind"] == "scratch" and self.settings[setting]["tuned"].get("lam_warmup", True)

    def tuned_overrides(self, setting: str, method: str) -> dict:
        """The setting's pinned lambda/gamma for a method that takes them (the grid winner comes as a
        --config file instead), lambda with its warm-up where `lam_warmup` says so."""
        keys = self.methods[method].get("tuned", [])
        if not keys or self.uses_grid_winner(setting, method):
            return {}
        tuned = self.settings[setting]["tuned"]
        return {"method": tuned_method(keys, tuned.get("lam"), tuned.get("gamma"), self.lam_warmup(setting, method))}

    def finetune_layers(self, setting: str, seed) -> tuple[list, dict]:
        """The fine-tuning protocol (all settings', then the setting's) and where it starts: the base
        run's checkpoint of the same seed."""
        which = self.config["finetune"].get("checkpoint", "best")
        start = self.start_layer(setting, self.base_of(setting), seed, which)
        protocol = [self.config["finetune"].get("train"), self.settings[setting].get("finetune", {}).get("train")]
        return protocol, start

    def start_layer(self, setting: str, base: str, seed, which: str) -> dict:
        """A fine-tune's start: checkpoint `which` (best, last) of the `base` run of the same seed."""
        return {
            "training": {
                "finetune_from": f"{self.run_dir(setting, base, seed)}/{which}.pt",
                "finetune_checkpoint": which,
            }
        }

    def run_overrides(self, setting: str, method: str, seed) -> dict:
        """Every train-config value of one run of `method` in `setting`."""
        s, m = self.settings[setting], self.methods[method]
        finetune = m["kind"] == "finetune"
        protocol, start = self.finetune_layers(setting, seed) if finetune else ([], {})
        return deep_merge(
            self.device_layer("finetune" if finetune else "train", setting),
            self.config.get("train"),
            s.get("train"),
            *protocol,
            m.get("train"),
            s.get("method_train", {}).get(method),
            self.tuned_overrides(setting, method),
            self.data_overrides(setting),
            {"seed": int(seed)},
            start,
        )

    def grid_overrides(self, setting: str, lam, gamma) -> dict:
        """One grid point: the grid's method fine-tuned from the base run with constant lambda and
        gamma, always selected on the validation split."""
        grid = self.settings[setting]["grid"]
        method, seed = grid.get("method", "iseat"), grid.get("seed", 0)
        protocol, start = self.finetune_layers(setting, seed)
        return deep_merge(
            self.device_layer("finetune", setting),
            self.config.get("train"),
            self.settings[setting].get("train"),
            *protocol,
            self.methods[method].get("train"),
            {"method": {"lam": float(lam), "gamma": float(gamma)}},
            self.data_overrides(setting),
            {"seed": int(seed), "data": {"selection": "validation"}},
            start,
        )

    def eta_sweep_overrides(self, sweep: dict, eta, seed) -> dict:
        """One run of the Eq. 9 strength sweep (Fig. 4, `analysis.eta_sweep`): the setting's model and
        data, the sweep's protocol, method at_eq9 with this eta, fine-tuned from the base run's
        checkpoint of the same seed."""
        setting = sweep["setting"]
        start = self.start_layer(setting, sweep["base"], seed, sweep.get("checkpoint", "best"))
        return deep_merge(
            self.device_layer("finetune", setting),
            self.config.get("train"),
            self.settings[setting].get("train"),
            sweep.get("train"),
            {"method": {"name": "at_eq9", "eta": float(eta)}},
            self.data_overrides(setting),
            {"seed": int(seed)},
            start,
        )
