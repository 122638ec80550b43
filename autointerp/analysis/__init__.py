"""Analyses across the units of several sources: feature splitting across SAE sizes, universality."""
