"""Set-up shared by every rule: config validation, wildcard constraints, paths, and the train
overrides (`iseat train --set ...`) of every run, derived from the config."""

import re
import shlex
from pathlib import Path

import jsonschema
import yaml
from iseat.data import registry
from iseat.workflow import cluster
from iseat.workflow.run_config import RunConfigs, number, set_args
from iseat.workflow.schema import validate as validate_against_schema

# The method catalog (workflow/methods.yaml); the config's `methods` block adds or replaces entries.
with open(workflow.source_path("../methods.yaml")) as catalog:
    config["methods"] = {**yaml.safe_load(catalog), **(config.get("methods") or {})}


def validate_config(section, schema, key=""):
    """Validate (and fill in defaults) against a workflow schema whose train sections come from the
    installed iseat package; a mistake is one line naming the key, e.g.
    `config: settings.svhn.train.training: Additional properties ...`."""
    try:
        validate_against_schema(section, workflow.source_path(schema))
    except jsonschema.ValidationError as mistake:
        where = ".".join(
            [key, *(str(part) for part in mistake.absolute_path)] if key else map(str, mistake.absolute_path)
        )
        raise ValueError(f"config: {where or '(top level)'}: {mistake.message}") from None


validate_config(config, "../schemas/config.schema.yaml")

RESULTS = config["results_dir"].rstrip("/")
DATA = config["data_root"].rstrip("/")
SETTINGS = config["settings"]
METHODS = config["methods"]
EVALUATIONS = ("aa", "pgd")  # aa.json: AutoAttack; pgd.json: PGD-<steps>
SHARDS = config["evaluation"].get("shards", 1)  # jobs per evaluation (then one gather job)
SWEEP = config["evaluation"].get("sweep")  # robustness curves: an eps sweep of every run (sweep.json), optional
RUNS = RunConfigs(config)  # every run's train overrides, resources and device

# Final outputs of optional rule files (rules/analysis.smk appends its figures and tables
# here; they join `all` and are linked from the results index).
EXTRA_FINAL_OUTPUTS = []


# ----------------------------------------------------------------------------- config checks


def config_mistake(key, message):
    raise ValueError(f"config: {key}: {message}")


def check_config():
    """What the schema cannot say: names that must refer to each other."""
    for name, setting in SETTINGS.items():
        for i, method in enumerate(setting["methods"]):
            if method not in METHODS:
                config_mistake(
                    f"settings.{name}.methods[{i}]",
                    f"unknown method {method!r}; the catalog (methods) has {sorted(METHODS)}",
                )
            if METHODS[method].get("tuned") and "tuned" not in setting:
                config_mistake(
                    f"settings.{name}.tuned",
                    f"required: method {method!r} takes tuned values {METHODS[method]['tuned']}",
                )
        for method in setting.get("method_train", {}):
            if method not in setting["methods"]:
                config_mistake(
                    f"settings.{name}.method_train.{method}", f"{method!r} is not one of this setting's methods"
                )
        needs_base = any(METHODS[m]["kind"] == "finetune" for m in setting["methods"]) or "grid" in setting
        base = setting.get("finetune", {}).get("base")
        if needs_base and base is None:
            config_mistake(
                f"settings.{name}.finetune.base",
                "required: fine-tuned methods or a grid start from this scratch method's run",
            )
        if base is not None and METHODS.get(base, {}).get("kind") != "scratch":
            config_mistake(
                f"settings.{name}.finetune.base", f"{base!r} must be a method of kind scratch in the catalog"
            )
        if "grid" in setting:
            grid_method = setting["grid"].get("method", "iseat")
            if grid_method not in METHODS:
                config_mistake(f"settings.{name}.grid.method", f"unknown method {grid_method!r}")
        if setting.get("tuned", {}).get("source") == "grid" and "grid" not in setting:
            config_mistake(f"settings.{name}.tuned.source", "'grid' needs a grid block in this setting")
        extends = registry.dataset(setting["extra"]).extends if setting.get("extra") else None
        if extends is not None and setting["dataset"] != extends:
            config_mistake(f"settings.{name}.extra", f"{setting['extra']} only extends {extends}")
    timing_setting = config.get("step_timing", {}).get("setting")
    if timing_setting is not None and timing_setting not in SETTINGS:
        config_mistake("step_timing.setting", f"unknown setting {timing_setting!r}; settings: {sorted(SETTINGS)}")


check_config()


# ----------------------------------------------------------------------------- names and paths


def alternatives(names):
    """A wildcard regex matching exactly these names (none: matches nothing)."""
    names = sorted(set(names))
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def methods_of(setting, kind=None):
    return [m for m in SETTINGS[setting]["methods"] if kind is None or METHODS[m]["kind"] == kind]


def method_names(kind):
    """Every method of this kind that some setting runs (scratch includes fine-tuning bases)."""
    names = {m for s in SETTINGS for m in methods_of(s, kind)}
    if kind == "scratch":
        names |= {base_of(s) for s in SETTINGS if base_of(s)}
    return names


def seeds_of(setting):
    return SETTINGS[setting].get("seeds", config["seeds"])


base_of = RUNS.base_of
run_dir = RUNS.run_dir


def grid_points(setting):
    grid = SETTINGS[setting]["grid"]
    return [(number(lam), number(gamma)) for lam in grid["lam"] for gamma in grid["gamma"]]


def grid_dir(setting, lam, gamma):
    return f"{RESULTS}/{setting}/grid/lam{lam}_gamma{gamma}"


def manifest(name):
    return f"{DATA}/{name}/manifest.json"


def data_manifests(setting):
    s = SETTINGS[setting]
    return [manifest(s["dataset"]), *([manifest(s["extra"])] if s.get("extra") else [])]


def datasets_used():
    return sorted({Path(m).parent.name for s in SETTINGS for m in data_manifests(s)})


uses_grid_winner = RUNS.uses_grid_winner
lam_warmup = RUNS.lam_warmup


wildcard_constraints:
    setting=alternatives(SETTINGS),
    method=alternatives(METHODS),
    seed=r"\d+",
    evaluation=alternatives(EVALUATIONS),
    shard=r"[1-9][0-9]*",
    lam=r"[0-9][0-9.e+-]*",
    gamma=r"[0-9][0-9.e+-]*",


# ----------------------------------------------------------------------------- train overrides


run_overrides = RUNS.run_overrides
grid_overrides = RUNS.grid_overrides


# ----------------------------------------------------------------------------- rule inputs


def run_inputs(wildcards):
    inputs = {"data": data_manifests(wildcards.setting)}
    if METHODS[wildcards.method]["kind"] == "finetune":
        inputs["base"] = f"{run_dir(wildcards.setting, base_of(wildcards.setting), wildcards.seed)}/summary.json"
    if uses_grid_winner(wildcards.setting, wildcards.method):
        inputs["tuned"] = f"{RESULTS}/{wildcards.setting}/{wildcards.method}/tuned.yaml"
    return inputs


def run_config_arg(wildcards, input):
    return f"--config {shlex.quote(input.tuned)}" if "tuned" in input.keys() else ""


def grid_inputs(wildcards):
    seed = SETTINGS[wildcards.setting]["grid"].get("seed", 0)
    return {
        "data": data_manifests(wildcards.setting),
        "base": f"{run_dir(wildcards.setting, base_of(wildcards.setting), seed)}/summary.json",
    }


def grid_point_args(wildcards, input):
    tuned = SETTINGS[wildcards.setting].get("tuned")
    points = [
        f"--point {lam} {gamma} {shlex.quote(str(Path(summary).parent))}"
        for (lam, gamma), summary in zip(grid_points(wildcards.setting), input.runs)
    ]
    if tuned:  # the paper's pinned pair, scored beside the winner, and which of the two the final runs use
        points.append(
            f"--paper-choice {number(tuned['lam'])} {number(tuned['gamma'])} --used {tuned.get('source', 'pinned')}"
        )
    return " ".join(points)


def evaluation_args(wildcards, kind="evaluate"):
    """`iseat evaluate` options of an evaluation; `kind`: the resources whose device it runs on."""
    ev = config["evaluation"]
    if wildcards.evaluation == "aa":
        n_ex = ev["autoattack"].get("n_ex")
        args = ["--attack", *ev["autoattack"].get("attacks", ["autoattack"])]
    else:
        n_ex = ev["pgd"].get("n_ex")
        args = ["--attack", *ev["pgd"].get("attacks", ["pgd"]), "--pgd-steps", str(ev["pgd"].get("steps", 50))]
    device = ["--device", job_device(kind, getattr(wildcards, "setting", None))]
    return " ".join([*args, *(["--n-ex", str(n_ex)] if n_ex else []), *device, "--no-progress"])


def evaluated_checkpoint(wildcards, input):
    return f"{Path(input.summary).parent}/{METHODS[wildcards.method].get('checkpoint', 'best')}.pt"


def evaluation_shards(wildcards):
    """The shard files of one evaluation, in order (`evaluation.shards` of them)."""
    run = run_dir(wildcards.setting, wildcards.method, wildcards.seed)
    return [f"{run}/{wildcards.evaluation}.shards/{i}.json" for i in range(1, SHARDS + 1)]


def seed_results(wildcards, evaluation=None):
    return [
        f"{run_dir(wildcards.setting, wildcards.method, seed)}/{evaluation or wildcards.evaluation}.json"
        for seed in seeds_of(wildcards.setting)
    ]


# ----------------------------------------------------------------------------- resources


job_resources = RUNS.job_resources
job_device = RUNS.job_device


def resource(kind, key):
    """A resource value per job, from the config (`resources`, then the setting's)."""
    return lambda wildcards: job_resources(kind, getattr(wildcards, "setting", None))[key]


def partition_resource(kind):
    """`slurm_partition` of a rule class, only when the config names one for it (globally or in a
    setting): otherwise the profile's default-resources/set-resources (the site's) decide."""
    named = [config["resources"].get(kind, {}).get("partition")]
    named += [s.get("resources", {}).get(kind, {}).get("partition") for s in SETTINGS.values()]
    return {"slurm_partition": resource(kind, "partition")} if any(named) else {}


def training_gpus(kind, wildcards):
    return job_resources(kind, getattr(wildcards, "setting", None))["gpu"]


def training_launch(kind):
    """What starts a training's `iseat`: torchrun on N GPUs, `iseat --pin-gpu` when packed (iseat.workflow.cluster)."""
    return lambda wildcards: cluster.launch_prefix(config, training_gpus(kind, wildcards))


def training_group(kind):
    """The job group of a training: packed single-GPU trainings share one job (cluster.gpus_per_node). Packing's
    settings go into the run's settings here, when jobs are made: Snakemake replaces them after parsing."""

    def group(wildcards):
        cluster.apply_packing(workflow, config)
        return cluster.pack_group(config, training_gpus(kind, wildcards))

    return group


cluster.check(config)


def attempt_number(wildcards, attempt):
    """The `attempt` resource: which try of the job this is (1, 2, ... with `retries`). Snakemake
    empties a job's log before each attempt, so GPU jobs also write <log>.attempt<N>: the reason a job
    was retried (a time limit, a node failure) stays readable after the retry."""
    return attempt


# Light rules run on the host that runs Snakemake (compute nodes often have no internet for fetch).
if config["resources"].get("light_local", True):

    localrules:
        fetch,
        aggregate_seeds,
        grid_select,
        grid_tuned,
        tables,
        figure_results,
        figure_curves,
        aggregate_sweep,
        figure_training,
        figure_grid,
        index,


# ----------------------------------------------------------------------------- final outputs


STEP_TIMING = f"{RESULTS}/benchmarks/step_timing.json"


def table_outputs():
    return [f"{RESULTS}/tables/{name}.{ext}" for name in TABLE_NAMES for ext in ("md", "csv", "tex")]


TABLE_NAMES = ["tab2", "tab3", "tab4", "tab5", "tab6", "all_results"]


def aggregated_results(evaluations=EVALUATIONS):
    return [f"{RESULTS}/{s}/{m}/{e}.json" for s in SETTINGS for m in methods_of(s) for e in evaluations]


def grid_winners():
    return [f"{RESULTS}/{s}/grid/winner.json" for s in SETTINGS if "grid" in SETTINGS[s]]


def figure_outputs():
    return [
        f"{RESULTS}/figures/results_vs_paper.png",
        *(f"{RESULTS}/figures/training_{s}.png" for s in SETTINGS),
        *(f"{RESULTS}/figures/grid_{s}.png" for s in SETTINGS if "grid" in SETTINGS[s]),
        *(f"{RESULTS}/figures/curves_{s}.png" for s in SETTINGS if SWEEP),
    ]


def get_final_output():
    return [
        f"{RESULTS}/README.md",
        *aggregated_results(),
        *grid_winners(),
        *table_outputs(),
        *figure_outputs(),
        *EXTRA_FINAL_OUTPUTS,
    ]


def result_entries(setting=None):
    """`--entry SETTING METHOD PAPER DIR` arguments: every aggregated result (of `setting` only, if given)
    and the paper setting it is compared with ('-' when none)."""
    entries = []
    for s in [setting] if setting else SETTINGS:
        paper = SETTINGS[s].get("paper") or "-"
        entries += [f"--entry {s} {m} {paper} {shlex.quote(run_parent(s, m))}" for m in methods_of(s)]
    return " ".join(entries)


def run_parent(setting, method):
    """Folder of a (setting, method): its seed runs and aggregated results."""
    return f"{RESULTS}/{setting}/{method}"


def label_of(name, entry):
    label = entry.get("label", name)
    return f"{name}={label}"


def label_args():
    labels = {"--setting-label": SETTINGS, "--method-label": METHODS}
    return " ".join(
        f"{flag} {shlex.quote(label_of(name, entry))}"
        for flag, catalog in labels.items()
        for name, entry in catalog.items()
    )


def training_runs(wildcards):
    return [
        f"{run_dir(wildcards.setting, m, seed)}/summary.json"
        for m in methods_of(wildcards.setting)
        for seed in seeds_of(wildcards.setting)
    ]


def training_run_args(wildcards, input):
    return " ".join(
        f"--run {m} {shlex.quote(str(Path(summary).parent))}"
        for m, summary in zip(
            [m for m in methods_of(wildcards.setting) for _ in seeds_of(wildcards.setting)], input.runs
        )
    )


def fetch_args(dataset):
    """`--from`, `--url` and `--limit` of `iseat fetch` from the config's `fetch` block."""
    source = config.get("fetch", {}).get(dataset) or {}
    args = []
    for key in ("from", "url", "limit"):
        if source.get(key) is not None:
            args += [f"--{key}", shlex.quote(str(source[key]))]
    return " ".join(args)
