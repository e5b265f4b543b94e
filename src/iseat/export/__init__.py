"""Exports of trained runs to other projects' formats (RobustBench)."""
