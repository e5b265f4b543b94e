"""Benchmarks of the pipeline's parts (loader throughput against the training step's consumption, ...)."""
