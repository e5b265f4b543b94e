"""Where every workflow output lies: the one layout of the results and data folders.

Each path function takes the wildcards its path has; called without them it gives the rule's pattern
(`run_dir()` -> 'results/{setting}/{method}/seed{seed}'), called with values the filled path. The lists
of final outputs (`all`, the tables' inputs, the index) are built here too, so the rules and `iseat plan`
see the same files. `Paths` takes the workflow config as checked by iseat.workflow.checks.
"""

from __future__ import annotations

import re

from iseat.workflow.run_config import number

EVALUATIONS = ("aa", "pgd")  # aa.json: AutoAttack; pgd.json: PGD-<steps>
TABLE_NAMES = ("tab2", "tab3", "tab4", "tab5", "tab6", "all_results")
TABLE_FORMATS = ("md", "csv", "tex")


def alternatives(names) -> str:
    """A wildcard regex matching exactly these names (none: matches nothing)."""
    names = sorted(set(names))
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


class Paths:
    """The names, path patterns and final outputs of one workflow config."""

    def __init__(self, config: dict):
        self.config = config
        self.settings = config["settings"]
        self.methods = config["methods"]
        self.results = config["results_dir"].rstrip("/")
        self.data = config["data_root"].rstrip("/")
        self.shards = config["evaluation"].get("shards", 1)
        self.sweep = config["evaluation"].get("sweep")

    # ------------------------------------------------------------------------- names

    def methods_of(self, setting: str, kind: str | None = None) -> list[str]:
        return [m for m in self.settings[setting]["methods"] if kind is None or self.methods[m]["kind"] == kind]

    def base_of(self, setting: str) -> str | None:
        return self.settings[setting].get("finetune", {}).get("base")

    def method_names(self, kind: str) -> set[str]:
        """Every method of this kind that some setting runs (scratch includes fine-tuning bases)."""
        names = {m for s in self.settings for m in self.methods_of(s, kind)}
        if kind == "scratch":
            names |= {self.base_of(s) for s in self.settings if self.base_of(s)}
        return names

    def seeds_of(self, setting: str) -> list:
        return self.settings[setting].get("seeds", self.config["seeds"])

    def grid_points(self, setting: str) -> list[tuple[str, str]]:
        grid = self.settings[setting]["grid"]
        return [(number(lam), number(gamma)) for lam in grid["lam"] for gamma in grid["gamma"]]

    def wildcard_constraints(self) -> dict:
        return {
            "setting": alternatives(self.settings),
            "method": alternatives(self.methods),
            "seed": r"\d+",
            "evaluation": alternatives(EVALUATIONS),
            "shard": r"[1-9][0-9]*",
            "lam": r"[0-9][0-9.e+-]*",
            "gamma": r"[0-9][0-9.e+-]*",
        }

    # ------------------------------------------------------------------------- path patterns

    def manifest(self, dataset="{dataset}") -> str:
        return f"{self.data}/{dataset}/manifest.json"

    def run_parent(self, setting="{setting}", method="{method}") -> str:
        """Folder of a (setting, method): its seed runs and aggregated results."""
        return f"{self.results}/{setting}/{method}"

    def run_dir(self, setting="{setting}", method="{method}", seed="{seed}") -> str:
        return f"{self.run_parent(setting, method)}/seed{seed}"

    def run_file(self, name: str, setting="{setting}", method="{method}", seed="{seed}") -> str:
        return f"{self.run_dir(setting, method, seed)}/{name}"

    def summary(self, setting="{setting}", method="{method}", seed="{seed}") -> str:
        """A run's summary.json, written last: the run is complete."""
        return self.run_file("summary.json", setting, method, seed)

    def evaluation(self, setting="{setting}", method="{method}", seed="{seed}", evaluation="{evaluation}") -> str:
        return self.run_file(f"{evaluation}.json", setting, method, seed)

    def shard(self, shard="{shard}", evaluation="{evaluation}", **run) -> str:
        return self.run_file(f"{evaluation}.shards/{shard}.json", **run)

    def aggregated(self, setting="{setting}", method="{method}", evaluation="{evaluation}") -> str:
        return f"{self.run_parent(setting, method)}/{evaluation}.json"

    def tuned(self, setting="{setting}", method="{method}") -> str:
        return f"{self.run_parent(setting, method)}/tuned.yaml"

    def grid_dir(self, setting="{setting}", lam="{lam}", gamma="{gamma}") -> str:
        return f"{self.results}/{setting}/grid/lam{lam}_gamma{gamma}"

    def grid_winner(self, setting="{setting}") -> str:
        return f"{self.results}/{setting}/grid/winner.json"

    def figure(self, name: str) -> str:
        return f"{self.results}/figures/{name}.png"

    def table(self, name: str, ext: str) -> str:
        return f"{self.results}/tables/{name}.{ext}"

    def step_timing(self, ext: str = "json") -> str:
        return f"{self.results}/benchmarks/step_timing.{ext}"

    def index(self) -> str:
        return f"{self.results}/README.md"

    def log(self, *parts: str) -> str:
        """A rule's log, under <results>/logs/ (parts joined by '/', the last one the file name)."""
        return "/".join([f"{self.results}/logs", *parts])

    # ------------------------------------------------------------------------- rule inputs

    def data_manifests(self, setting: str) -> list[str]:
        s = self.settings[setting]
        return [self.manifest(s["dataset"]), *([self.manifest(s["extra"])] if s.get("extra") else [])]

    def datasets_used(self) -> list[str]:
        return sorted({d for s in self.settings.values() for d in (s["dataset"], s.get("extra")) if d})

    def uses_grid_winner(self, setting: str, method: str) -> bool:
        tuned = self.settings[setting].get("tuned", {})
        return bool(self.methods[method].get("tuned")) and tuned.get("source", "pinned") == "grid"

    def run_inputs(self, setting: str, method: str, seed) -> dict:
        """A training's data, the base run it fine-tunes (fine-tuning) and the grid's tuned values (if used)."""
        inputs = {"data": self.data_manifests(setting)}
        if self.methods[method]["kind"] == "finetune":
            inputs["base"] = self.summary(setting, self.base_of(setting), seed)
        if self.uses_grid_winner(setting, method):
            inputs["tuned"] = self.tuned(setting, method)
        return inputs

    def grid_inputs(self, setting: str) -> dict:
        seed = self.settings[setting]["grid"].get("seed", 0)
        return {"data": self.data_manifests(setting), "base": self.summary(setting, self.base_of(setting), seed)}

    def grid_runs(self, setting: str) -> list[str]:
        return [f"{self.grid_dir(setting, lam, gamma)}/summary.json" for lam, gamma in self.grid_points(setting)]

    def evaluation_shards(self, setting: str, method: str, seed, evaluation: str) -> list[str]:
        """The shard files of one evaluation, in order (`evaluation.shards` of them)."""
        run = {"setting": setting, "method": method, "seed": seed}
        return [self.shard(i, evaluation, **run) for i in range(1, self.shards + 1)]

    def seed_results(self, setting: str, method: str, evaluation: str) -> list[str]:
        return [self.evaluation(setting, method, seed, evaluation) for seed in self.seeds_of(setting)]

    def training_runs(self, setting: str) -> list[tuple[str, str]]:
        """(method, summary.json) of every run of a setting, methods in order, then seeds."""
        return [
            (m, self.summary(setting, m, seed)) for m in self.methods_of(setting) for seed in self.seeds_of(setting)
        ]

    def curve_inputs(self, setting: str) -> list[str]:
        return [self.aggregated(setting, m, e) for m in self.methods_of(setting) for e in ("sweep", "aa")]

    def per_sample_results(self) -> list[str]:
        """Every seed's AutoAttack per-sample CSV: the paired comparisons are made on the same test images."""
        return [
            self.run_file("aa.per_sample.csv", s, m, seed)
            for s in self.settings
            for m in self.methods_of(s)
            for seed in self.seeds_of(s)
        ]

    # ------------------------------------------------------------------------- final outputs

    def table_outputs(self) -> list[str]:
        return [self.table(name, ext) for name in TABLE_NAMES for ext in TABLE_FORMATS]

    def significance_outputs(self) -> list[str]:
        return [self.table("significance", ext) for ext in ("csv", "md")]

    def aggregated_results(self, evaluations=EVALUATIONS) -> list[str]:
        return [self.aggregated(s, m, e) for s in self.settings for m in self.methods_of(s) for e in evaluations]

    def sweep_results(self) -> list[str]:
        """Every (setting, method)'s aggregated sweep.json (none without `evaluation.sweep`)."""
        return self.aggregated_results(("sweep",)) if self.sweep else []

    def grid_winners(self) -> list[str]:
        return [self.grid_winner(s) for s in self.settings if "grid" in self.settings[s]]

    def figure_outputs(self) -> list[str]:
        return [
            self.figure("results_vs_paper"),
            *(self.figure(f"training_{s}") for s in self.settings),
            *(self.figure(f"grid_{s}") for s in self.settings if "grid" in self.settings[s]),
            *(self.figure(f"curves_{s}") for s in self.settings if self.sweep),
        ]

    def final_outputs(self, extra=()) -> list[str]:
        """The `all` target: the index, every aggregated result, grid winner, table and figure, and `extra`."""
        return [
            self.index(),
            *self.aggregated_results(),
            *self.grid_winners(),
            *self.table_outputs(),
            *self.figure_outputs(),
            *extra,
        ]


class AnalysisPaths:
    """The Section 3 analysis's runs and outputs (the config's `analysis` block, checked)."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self.analysis = paths.config["analysis"]
        self.dir = f"{paths.results}/analysis"
        self.runs = {run["name"]: run for run in self.analysis["runs"]}
        self.eta_sweep = self.analysis.get("eta_sweep")
        self.etas = (self.eta_sweep or {}).get("etas", [])

    def eta_dir(self, eta=None) -> str:
        """An eta-sweep run's folder (the pattern without `eta`)."""
        return f"{self.dir}/eta_sweep/eta{'{eta}' if eta is None else number(eta)}"

    def study_dir(self, study: str, name="{name}") -> str:
        """Folder of one study (margin, landscape) of an analysis run."""
        return f"{self.dir}/{name}/{study}"

    def file(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def run_dir(self, name: str) -> str:
        run = self.runs[name]
        if "eta" in run:
            return self.eta_dir(run["eta"])
        return self.paths.run_dir(run["setting"], run["method"], self.analysis["seed"])

    def summary(self, name: str) -> str:
        return f"{self.run_dir(name)}/summary.json"

    def checkpoint(self, name: str) -> str:
        """The checkpoint the run's evaluation used, so AV, margin and robustness describe one model."""
        run = self.runs[name]
        which = "best" if "eta" in run else self.paths.methods[run["method"]].get("checkpoint", "best")
        return f"{self.run_dir(name)}/{which}.pt"

    def evaluation(self, name: str) -> str:
        return f"{self.run_dir(name)}/{self.analysis['evaluation']}.json"

    def margin_names(self) -> list[str]:
        return list(dict.fromkeys(self.analysis["table1"] + self.analysis["margin"]["runs"]))

    def eta_inputs(self) -> dict:
        setting = self.eta_sweep["setting"]
        return {
            "data": self.paths.data_manifests(setting),
            "base": self.paths.summary(setting, self.eta_sweep["base"], self.analysis["seed"]),
        }

    def eta_files(self, name: str) -> list[str]:
        return [f"{self.eta_dir(eta)}/{name}" for eta in self.etas]

    def final_outputs(self) -> list[str]:
        """The analysis's figures and tables and its index page (none for an empty block)."""
        outputs = [self.file(f"fig1a_{name}.png") for name in self.analysis["av_figure"]]
        outputs += [
            f"{self.study_dir('margin', name)}/{fig}.png" for name in self.margin_names() for fig in ("fig1b", "fig2")
        ]
        outputs += [f"{self.study_dir('landscape', name)}/fig3.png" for name in self.analysis["landscape"]["runs"]]
        if self.eta_sweep is not None:
            outputs.append(self.file("fig4.png"))
        if self.analysis["table1"]:
            outputs.append(self.file("table1.md"))
        return outputs + [self.index()] if outputs else []

    def index(self) -> str:
        return self.file("README.md")
