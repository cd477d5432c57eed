"""Multi-object tracking and people-flow analytics: containers, trackers, lines, zones,
heatmaps and cross-camera linking."""
