"""Drivers, one package per family; each imports only the core's values (models, errors)."""
