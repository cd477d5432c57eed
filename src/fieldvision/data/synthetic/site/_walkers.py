"""Visitors: arrivals, parties, routes through the corridor, dwell at shop fronts.

Parties (1–4 people walking together) arrive at the west door as a Poisson process (arrival
times uniform over the first 85 % of the recording, given their number). A party picks
shop fronts to visit (each with probability 0.3), visits them west to east, then leaves by
the east exit or turns back to the door (a party turning back visits at least one shop, so
nobody reverses in the open corridor). It walks at one speed in one lane; at a shop it
steps out of the lane to the shop front, lingers there (standing, shuffling slowly), and
steps back. Group members keep a fixed offset from their leader, so they walk, stop and
turn together.

A route is a piecewise-linear path in space *and* time (knots ``(t, x, y)``): the
continuous ground truth from which boxes are sampled and line crossings computed exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fieldvision.data.synthetic.site._floorplan import (
    ENTRANCE_X,
    GROUP_DX,
    GROUP_DY,
    LANE_Y,
    SPEED,
    FloorPlan,
    Zone,
)

_PARTY_SIZES, _PARTY_P = (1, 2, 3, 4), (0.62, 0.22, 0.11, 0.05)
_VISIT_P = 0.3  # probability that a party stops at a given shop front
_DWELL_MEDIAN_S, _DWELL_SIGMA = 30.0, 0.6  # log-normal dwell time at a shop front
_DWELL_RANGE = (8.0, 180.0)
_SHUFFLE_SPEED = 0.35  # m/s while moving about in front of a shop
_ARRIVAL_SPAN = 0.85  # arrivals in the first 85 % of the recording: most people also leave


@dataclass(frozen=True, eq=False)
class Walker:
    """One person.

    Attributes:
        pid: Person id (1-based; the ``id`` column of every camera's ``gt.txt``).
        party: Index of the party the person arrived with.
        height: Body height (m).
        width_ratio: Box width / box height.
        t: ``(K,)`` knot times (s since the start), non-decreasing.
        xy: ``(K, 2)`` knot floor positions (m); the path is linear between knots.
    """

    pid: int
    party: int
    height: float
    width_ratio: float
    t: np.ndarray
    xy: np.ndarray

    def at(self, times: np.ndarray) -> np.ndarray:
        """``(N, 2)`` floor positions at `times` (clamped to the first / last knot)."""
        return np.column_stack(
            [np.interp(times, self.t, self.xy[:, 0]), np.interp(times, self.t, self.xy[:, 1])]
        )


class _Route:
    """Accumulates the knots of a leader's path."""

    def __init__(self, t0: float, start: np.ndarray, speed: float) -> None:
        self.t, self.xy, self.speed = [t0], [start], speed

    @property
    def here(self) -> np.ndarray:
        return self.xy[-1]

    def go(self, point: np.ndarray, speed: float | None = None) -> None:
        dist = float(np.hypot(*(point - self.here)))
        if dist > 1e-9:
            self.t.append(self.t[-1] + dist / (speed or self.speed))
            self.xy.append(np.asarray(point, float))

    def wait(self, seconds: float) -> None:
        self.t.append(self.t[-1] + seconds)
        self.xy.append(self.here.copy())

    def dwell(self, zone: Zone, seconds: float, rng: np.random.Generator) -> None:
        """Linger in front of a shop: stand a few seconds, shuffle to another spot, ..."""
        end = self.t[-1] + seconds
        while True:
            self.wait(min(rng.uniform(3.0, 10.0), end - self.t[-1]))
            nxt = zone.sample(rng)
            step = float(np.hypot(*(nxt - self.here))) / _SHUFFLE_SPEED
            if self.t[-1] + step >= end:
                break
            self.go(nxt, _SHUFFLE_SPEED)
        if end > self.t[-1]:
            self.wait(end - self.t[-1])


def _leader_route(
    plan: FloorPlan, t0: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    speed = float(np.clip(rng.normal(1.25, 0.22), *SPEED))
    lane = float(rng.uniform(*LANE_Y))
    visits = [z for z in plan.zones if rng.random() < _VISIT_P]
    east = bool(rng.random() < 0.5)
    if not east and not visits and plan.zones:
        visits = [plan.zones[int(rng.integers(len(plan.zones)))]]
    route = _Route(t0, np.array([ENTRANCE_X, lane]), speed)
    for zone in sorted(visits, key=lambda z: z.x0):
        spot = zone.sample(rng)
        route.go(np.array([spot[0], lane]))  # along the lane, then straight to the shop
        route.go(spot)
        dwell = math.exp(rng.normal(math.log(_DWELL_MEDIAN_S), _DWELL_SIGMA))
        route.dwell(zone, float(np.clip(dwell, *_DWELL_RANGE)), rng)
        route.go(np.array([route.here[0], lane]))
    route.go(np.array([plan.exit_x if east or not plan.zones else ENTRANCE_X, lane]))
    return np.asarray(route.t), np.asarray(route.xy)


def _offsets(size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Leader at (0, 0); members at distinct offsets (at least 0.45 m apart)."""
    out = [np.zeros(2)]
    while len(out) < size:
        for _ in range(50):
            cand = np.array([rng.uniform(-GROUP_DX, GROUP_DX), rng.uniform(-GROUP_DY, GROUP_DY)])
            if all(np.hypot(*(cand - o)) >= 0.45 for o in out):
                break
        out.append(cand)
    return out


def plan_walkers(
    plan: FloorPlan, people: int, duration_s: float, rng: np.random.Generator
) -> list[Walker]:
    """Everyone who comes to the site during `duration_s` seconds, in order of arrival.

    Returns:
        `people` walkers with pids ``1..people``.
    """
    sizes: list[int] = []
    while sum(sizes) < people:
        sizes.append(int(rng.choice(_PARTY_SIZES, p=_PARTY_P)))
    if sizes:
        sizes[-1] -= sum(sizes) - people
    arrivals = np.sort(rng.uniform(0.0, _ARRIVAL_SPAN * duration_s, len(sizes)))
    walkers: list[Walker] = []
    for party, (size, t0) in enumerate(zip(sizes, arrivals, strict=True)):
        t, xy = _leader_route(plan, float(t0), rng)
        for offset in _offsets(size, rng):
            walkers.append(
                Walker(
                    pid=len(walkers) + 1,
                    party=party,
                    height=float(np.clip(rng.normal(1.70, 0.09), 1.45, 2.0)),
                    width_ratio=float(rng.uniform(0.36, 0.46)),
                    t=t,
                    xy=xy + offset,
                )
            )
    return walkers
