"""The people-flow pipeline: a site file (cameras, lines, zones, camera graph) → events."""
