"""Regions: groups of sites that a regional annual report covers (tables and service)."""
