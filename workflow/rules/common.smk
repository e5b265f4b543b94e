"""Set-up shared by every rule: config validation, wildcard constraints, paths, and the train
overrides (`iseat train --set ...`) of every run, derived from the config."""

import copy
import re
import shlex
from pathlib import Path

import jsonschema
import yaml
from iseat.workflow_schema import validate as validate_against_schema

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

# Final outputs of optional rule files (rules/analysis.smk appends its figures and tables
# here; they join `all` and are linked from the results index).
EXTRA_FINAL_OUTPUTS = []

RESOURCE_DEFAULTS = {
    "train": {"gpu": 1, "threads": 8, "mem_mb": 16000, "runtime": 1440, "partition": ""},
    "finetune": {"gpu": 1, "threads": 8, "mem_mb": 16000, "runtime": 720, "partition": ""},
    "evaluate": {"gpu": 1, "threads": 4, "mem_mb": 16000, "runtime": 720, "partition": ""},
    "light": {"gpu": 0, "threads": 1, "mem_mb": 4000, "runtime": 60, "partition": ""},
}


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
        if setting.get("extra") and setting["dataset"] != "cifar10":
            config_mistake(f"settings.{name}.extra", "the pseudo-labelled 80M-TI data only extends cifar10")
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


def base_of(setting):
    return SETTINGS[setting].get("finetune", {}).get("base")


def run_dir(setting, method, seed):
    return f"{RESULTS}/{setting}/{method}/seed{seed}"


def number(x):
    """How a grid value is written in a path: 0.1 -> '0.1', 0.007 -> '0.007'."""
    return format(float(x), "g")


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


def uses_grid_winner(setting, method):
    tuned = SETTINGS[setting].get("tuned", {})
    return bool(METHODS[method].get("tuned")) and tuned.get("source", "pinned") == "grid"


wildcard_constraints:
    setting=alternatives(SETTINGS),
    method=alternatives(METHODS),
    seed=r"\d+",
    evaluation=alternatives(EVALUATIONS),
    lam=r"[0-9][0-9.e+-]*",
    gamma=r"[0-9][0-9.e+-]*",


# ----------------------------------------------------------------------------- train overrides


def deep_merge(*layers):
    """Later layers win; nested mappings merge, anything else is replaced."""
    out = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def yaml_value(value):
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def set_args(tree):
    """`key=value` arguments of `iseat train --set`, sorted so equal configs give equal commands."""
    flat = flatten(tree)
    return " ".join(shlex.quote(f"{key}={yaml_value(flat[key])}") for key in sorted(flat))


def data_overrides(setting):
    s = SETTINGS[setting]
    data = {"dataset": s["dataset"], "root": f"{DATA}/{s['dataset']}"}
    if s.get("extra"):
        data["extra"] = f"{DATA}/{s['extra']}"
    return {"data": data}


def tuned_overrides(setting, method, full_training):
    """The setting's pinned lambda/gamma for a method that takes them (the grid winner comes
    as a --config file instead). Full trainings get lambda's warm-up: [0, lambda] per lr stage."""
    keys = METHODS[method].get("tuned", [])
    if not keys or uses_grid_winner(setting, method):
        return {}
    tuned = SETTINGS[setting]["tuned"]
    values = {}
    if "lam" in keys:
        warmup = full_training and tuned.get("lam_warmup", True)
        values["lam"] = [0.0, float(tuned["lam"])] if warmup else float(tuned["lam"])
    if "gamma" in keys:
        values["gamma"] = float(tuned["gamma"])
    return {"method": values}


def finetune_layers(setting, seed):
    """The fine-tuning protocol and where it starts: the base run's checkpoint (same seed)."""
    which = config["finetune"].get("checkpoint", "best")
    start = {
        "training": {
            "finetune_from": f"{run_dir(setting, base_of(setting), seed)}/{which}.pt",
            "finetune_checkpoint": which,
        }
    }
    protocol = [config["finetune"].get("train"), SETTINGS[setting].get("finetune", {}).get("train")]
    return protocol, start


def run_overrides(setting, method, seed):
    """Every train-config value of one run: all runs < setting < (fine-tuning protocol) < method <
    the setting's per-method overrides < tuned values < data paths, seed and start checkpoint."""
    s, m = SETTINGS[setting], METHODS[method]
    finetune = m["kind"] == "finetune"
    protocol, start = finetune_layers(setting, seed) if finetune else ([], {})
    kind = "finetune" if finetune else "train"
    return deep_merge(
        device_layer(kind, setting),
        config.get("train"),
        s.get("train"),
        *protocol,
        m.get("train"),
        s.get("method_train", {}).get(method),
        tuned_overrides(setting, method, not finetune),
        data_overrides(setting),
        {"seed": int(seed)},
        start,
    )


def grid_overrides(setting, lam, gamma):
    """One grid point: the grid's method fine-tuned from the base run with constant lambda and
    gamma, always selected on the validation split."""
    grid = SETTINGS[setting]["grid"]
    method, seed = grid.get("method", "iseat"), grid.get("seed", 0)
    protocol, start = finetune_layers(setting, seed)
    return deep_merge(
        device_layer("finetune", setting),
        config.get("train"),
        SETTINGS[setting].get("train"),
        *protocol,
        METHODS[method].get("train"),
        {"method": {"lam": float(lam), "gamma": float(gamma)}},
        data_overrides(setting),
        {"seed": int(seed), "data": {"selection": "validation"}},
        start,
    )


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


def evaluation_args(wildcards):
    ev = config["evaluation"]
    if wildcards.evaluation == "aa":
        n_ex = ev["autoattack"].get("n_ex")
        args = ["--attack", *ev["autoattack"].get("attacks", ["autoattack"])]
    else:
        n_ex = ev["pgd"].get("n_ex")
        args = ["--attack", *ev["pgd"].get("attacks", ["pgd"]), "--pgd-steps", str(ev["pgd"].get("steps", 50))]
    device = ["--device", job_device("evaluate", getattr(wildcards, "setting", None))]
    return " ".join([*args, *(["--n-ex", str(n_ex)] if n_ex else []), *device, "--no-progress"])


def evaluated_checkpoint(wildcards, input):
    return f"{Path(input.summary).parent}/{METHODS[wildcards.method].get('checkpoint', 'best')}.pt"


def seed_results(wildcards):
    return [
        f"{run_dir(wildcards.setting, wildcards.method, seed)}/{wildcards.evaluation}.json"
        for seed in seeds_of(wildcards.setting)
    ]


# ----------------------------------------------------------------------------- resources


def job_resources(kind, setting=None):
    merged = deep_merge(
        RESOURCE_DEFAULTS[kind],
        config["resources"].get(kind),
        SETTINGS[setting].get("resources", {}).get(kind) if setting else None,
    )
    return merged


def resource(kind, key):
    """A resource value per job, from the config (`resources`, then the setting's)."""
    return lambda wildcards: job_resources(kind, getattr(wildcards, "setting", None))[key]


def partition_resource(kind):
    """`slurm_partition` of a rule class, only when the config names one for it (globally or in a
    setting): otherwise the profile's default-resources/set-resources (the site's) decide."""
    named = [config["resources"].get(kind, {}).get("partition")]
    named += [s.get("resources", {}).get(kind, {}).get("partition") for s in SETTINGS.values()]
    return {"slurm_partition": resource(kind, "partition")} if any(named) else {}


def attempt_number(wildcards, attempt):
    """The `attempt` resource: which try of the job this is (1, 2, ... with `retries`). Snakemake
    empties a job's log before each attempt, so GPU jobs also write <log>.attempt<N>: the reason a job
    was retried (a time limit, a node failure) stays readable after the retry."""
    return attempt


def job_device(kind, setting=None):
    """The device given to a job's command: CUDA when the job asks for a GPU (the command then fails
    fast on a node without a usable one), else the CPU. A config's own runtime.device (its `train`
    blocks) wins, for evaluations and analyses too."""
    train = deep_merge(config.get("train"), SETTINGS[setting].get("train") if setting else None)
    return train.get("runtime", {}).get("device") or ("cuda" if job_resources(kind, setting)["gpu"] > 0 else "cpu")


def device_layer(kind, setting=None):
    return {"runtime": {"device": job_device(kind, setting)}}


# Light rules run on the host that runs Snakemake (compute nodes often have no internet for fetch).
if config["resources"].get("light_local", True):

    localrules:
        fetch,
        aggregate_seeds,
        grid_select,
        grid_tuned,
        tables,
        figure_results,
        figure_training,
        figure_grid,
        index,


# ----------------------------------------------------------------------------- final outputs


STEP_TIMING = f"{RESULTS}/benchmarks/step_timing.json"


def step_timing_args():
    """`iseat benchmark step` options: the model of the configured setting (Tab. 4's WRN34-10 in the paper)."""
    timing = config.get("step_timing")
    if not timing:  # no time column: the rule is never asked for
        return ""
    model = SETTINGS[timing["setting"]].get("train", {}).get("model", {}).get("arch") or config.get("train", {}).get(
        "model", {}
    ).get("arch", "small_cnn")
    return (
        f"--model {model} --batch-size {timing.get('batch_size', 128)} --repeats {timing.get('repeats', 10)} "
        f"--warmup {timing.get('warmup', 2)}"
    )


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


def result_entries():
    """`--entry SETTING METHOD PAPER DIR` arguments: every aggregated result and the paper setting it
    is compared with ('-' when none)."""
    entries = []
    for s in SETTINGS:
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
