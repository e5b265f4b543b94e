"""The Snakemake workflow as a library: its config schema, each run's config, the plan and the status."""
