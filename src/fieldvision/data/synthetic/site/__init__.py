"""A procedural multi-camera site for people-flow analytics: MOTChallenge files + truth.

What it simulates
-----------------
*Floor plan.* A mall corridor in metres: a west door (the entrance, with a counting line),
an east exit, shop fronts (zones) along both walls (see `_floorplan`).

*People.* Parties of 1–4 arrive as a Poisson process, walk lanes at their own speed, stop
at shop fronts (dwell), and leave by the east exit or back through the door; group members
walk side by side (see `_walkers`).

*Cameras.* Pinhole cameras above the south wall looking across the corridor: a floor
homography plus the person's height give the box, so boxes grow towards the camera. The
first two views overlap, the next is separated by an unseen stretch, alternating; the
site's camera graph (transit windows) follows from the views and walking speeds (see
`_camera`).

*Detector.* Occlusion by nearer people (misses, lower scores, mixed embeddings), random
misses, short-lived clutter false positives, box jitter, score noise; appearance
embeddings are unit vectors with a per-camera shift and per-frame noise (see `_sensor`).

*Truth.* Line counts from exact crossings of the continuous routes with the drawn
segments, zone visits and dwell, camera visits, cross-camera transitions and the number of
unique people (see `_truth`), independent of any tracker.

Everything is deterministic in the seed. Layout: `_camera`, `_floorplan`, `_walkers`,
`_sensor`, `_truth` (`SiteTruth`) and `_writer` (`generate_site`).
"""

from fieldvision.data.synthetic.site._truth import SiteTruth, segment_crossings
from fieldvision.data.synthetic.site._writer import generate_site

__all__ = ["SiteTruth", "generate_site", "segment_crossings"]
