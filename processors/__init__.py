"""Stream processors: the faust app and the pure enrichment functions it calls."""
