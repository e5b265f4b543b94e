"""Shared by every layer: one-line errors, atomic output, locks, budgets, the device, provenance,
HDF5 opening and the data-parallel collectives."""
