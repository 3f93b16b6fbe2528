"""frostline."""
