"""Reports: the printed, signed PDF/A-3 reports, their registry, and the regulator's portal."""
