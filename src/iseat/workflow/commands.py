"""The options the workflow's rules pass to `iseat` commands, built from the config: evaluations, sweeps,
grid points, fetch sources, table entries and labels, and the Section 3 analyses. Each returns the
options as one shell-quoted string, in an order fixed by the config (equal configs give equal commands,
so nothing reruns for a reordering)."""

from __future__ import annotations

import shlex
from pathlib import Path

from iseat.workflow.paths import AnalysisPaths, Paths
from iseat.workflow.resources import job_device
from iseat.workflow.run_config import number


class Commands:
    """Command-line options of the rules of one checked workflow config."""

    def __init__(self, config: dict, paths: Paths):
        self.config, self.paths = config, paths

    def device(self, kind: str, setting: str | None = None) -> str:
        return job_device(self.config, kind, setting)

    def evaluation_args(self, evaluation: str, setting: str | None, kind: str = "evaluate") -> str:
        """`iseat evaluate` options of an evaluation (aa or pgd); `kind`: the resources whose device it runs on."""
        ev = self.config["evaluation"]
        if evaluation == "aa":
            n_ex = ev["autoattack"].get("n_ex")
            args = ["--attack", *ev["autoattack"].get("attacks", ["autoattack"])]
        else:
            n_ex = ev["pgd"].get("n_ex")
            args = ["--attack", *ev["pgd"].get("attacks", ["pgd"]), "--pgd-steps", str(ev["pgd"].get("steps", 50))]
        return self.with_device(args, n_ex, kind, setting)

    def sweep_args(self, setting: str) -> str:
        """`iseat evaluate --eps-sweep` options from `evaluation.sweep`."""
        sweep = self.config["evaluation"]["sweep"]
        args = ["--eps-sweep", *(str(eps) for eps in sweep["eps"]), "--pgd-steps", str(sweep.get("steps", 10))]
        return self.with_device(args, sweep.get("n_ex"), "evaluate", setting)

    def with_device(self, args: list, n_ex, kind: str, setting: str | None) -> str:
        device = ["--device", self.device(kind, setting)]
        return " ".join([*args, *(["--n-ex", str(n_ex)] if n_ex else []), *device, "--no-progress"])

    def shard_arg(self, shard) -> str:
        return f"--shard {shard}/{self.paths.shards}"

    def checkpoint(self, method: str, summary) -> str:
        """The checkpoint of a run that its evaluations use (the method's `checkpoint`, best by default)."""
        return f"{Path(summary).parent}/{self.paths.methods[method].get('checkpoint', 'best')}.pt"

    def tuned_config_arg(self, inputs) -> str:
        """`--config tuned.yaml` of a run that takes the grid winner's values."""
        return f"--config {shlex.quote(inputs.tuned)}" if "tuned" in inputs.keys() else ""

    def grid_point_args(self, setting: str, summaries) -> str:
        """`iseat aggregate grid` points, and the paper's pinned pair scored beside the winner (if tuned)."""
        tuned = self.paths.settings[setting].get("tuned")
        points = [
            f"--point {lam} {gamma} {shlex.quote(str(Path(summary).parent))}"
            for (lam, gamma), summary in zip(self.paths.grid_points(setting), summaries, strict=True)
        ]
        if tuned:
            used = tuned.get("source", "pinned")
            points.append(f"--paper-choice {number(tuned['lam'])} {number(tuned['gamma'])} --used {used}")
        return " ".join(points)

    def fetch_args(self, dataset: str) -> str:
        """`--from`, `--url` and `--limit` of `iseat fetch` from the config's `fetch` block."""
        source = self.config.get("fetch", {}).get(dataset) or {}
        return " ".join(
            f"--{key} {shlex.quote(str(source[key]))}"
            for key in ("from", "url", "limit")
            if source.get(key) is not None
        )

    def result_entries(self, setting: str | None = None) -> str:
        """`--entry SETTING METHOD PAPER DIR` of every aggregated result (of `setting` only, if given) and
        the paper setting it is compared with ('-' when none)."""
        entries = []
        for s in [setting] if setting else self.paths.settings:
            paper = self.paths.settings[s].get("paper") or "-"
            parent = lambda m, s=s: shlex.quote(self.paths.run_parent(s, m))  # noqa: E731
            entries += [f"--entry {s} {m} {paper} {parent(m)}" for m in self.paths.methods_of(s)]
        return " ".join(entries)

    def label_args(self) -> str:
        labels = {"--setting-label": self.paths.settings, "--method-label": self.paths.methods}
        return " ".join(
            f"{flag} {shlex.quote(name + '=' + entry.get('label', name))}"
            for flag, catalog in labels.items()
            for name, entry in catalog.items()
        )

    def title(self, setting: str) -> str:
        return shlex.quote(self.paths.settings[setting].get("label", setting))

    def training_run_args(self, setting: str, summaries) -> str:
        methods = [m for m, _ in self.paths.training_runs(setting)]
        return " ".join(
            f"--run {m} {shlex.quote(str(Path(s).parent))}" for m, s in zip(methods, summaries, strict=True)
        )

    def tuned_keys(self, method: str) -> str:
        return " ".join(self.paths.methods[method]["tuned"])


class AnalysisCommands:
    """Options of the Section 3 analysis rules (`iseat analyse ...`)."""

    def __init__(self, analysis: AnalysisPaths):
        self.analysis = analysis
        self.block = analysis.analysis

    def options(self, section: str) -> str:
        """`--key value` options of `iseat analyse` from a config section (lists as several values)."""
        skip = {"runs", "split", "n", "clip", "pick"}
        args = []
        for key, value in sorted(self.block[section].items()):  # sorted: key order must not trigger reruns
            if key in skip or value is None:
                continue
            values = value if isinstance(value, list) else [value]
            args += [f"--{key.replace('_', '-')}"] + [
                format(v, "g") if isinstance(v, float) else str(v) for v in values
            ]
        return " ".join(args)

    def eta_vulnerability_options(self) -> str:
        """`iseat analyse vulnerability` options of the eta sweep's test-set AV (analysis.eta_sweep.test_av)."""
        test_av = self.analysis.eta_sweep.get("test_av", {})
        n = test_av.get("n_examples")
        return " ".join([f"--batch-size {test_av.get('batch_size', 256)}", *([f"--n-examples {n}"] if n else [])])

    def margin_n(self) -> str:
        n = self.block["margin"]["n"]
        return f"--n {n}" if n else ""

    def title(self, name: str) -> str:
        return shlex.quote(self.analysis.runs[name]["label"])

    def table1_entries(self, margins, evals) -> str:
        names = self.block["table1"]
        return " ".join(
            f"--entry {shlex.quote(self.analysis.runs[name]['label'])} {m} {e}"
            for name, m, e in zip(names, margins, evals, strict=True)
        )
