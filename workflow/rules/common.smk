"""Set-up shared by every rule: the config checked (iseat.workflow.checks), and the paths, resources,
run configs and command options of every job, from the iseat.workflow library."""

from pathlib import Path

from iseat.data import registry
from iseat.workflow.checks import checked
from iseat.workflow.commands import AnalysisCommands, Commands
from iseat.workflow.paths import AnalysisPaths, Paths, alternatives
from iseat.workflow.resources import RuleLaunch, RuleResources
from iseat.workflow.run_config import RunConfigs, set_args

# The method catalog (workflow/methods.yaml) merged in, the schemas applied, the names checked.
checked(
    config,
    workflow.source_path("../methods.yaml"),
    workflow.source_path("../schemas/config.schema.yaml"),
    workflow.source_path("../schemas/analysis.schema.yaml"),
)

PATHS = Paths(config)  # every output path
ANALYSIS = AnalysisPaths(PATHS)  # the Section 3 analysis's runs and outputs
RUNS = RunConfigs(config)  # every run's train overrides
RESOURCES = RuleResources(config)  # threads and resources per rule class
LAUNCH = RuleLaunch(config, workflow)  # the trainings' job group (packing) and launch command
COMMANDS = Commands(config, PATHS)
ANALYSIS_COMMANDS = AnalysisCommands(ANALYSIS)


wildcard_constraints:
    **PATHS.wildcard_constraints(),


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
        analysis_av_figure,
        analysis_eta_figure,
        analysis_table1,
        analysis_index,
