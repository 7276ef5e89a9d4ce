"""Storage: equipment (freezers, LN2 dewars, fridges) and their temperature readings."""
