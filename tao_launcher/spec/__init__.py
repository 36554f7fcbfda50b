"""Experiment specs: typed schemas (the single source of defaults, validation and --help).

Imports no torch: the host-side launcher validates specs before any container starts.
"""
