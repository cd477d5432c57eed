"""A constant-velocity Kalman filter over boxes, vectorised over many tracks.

The state of one track is 8 numbers ``[cx, cy, a, h, vcx, vcy, va, vh]``: box centre,
aspect ratio ``a = w / h``, height, and their velocities per frame. A measurement is the
first four (``xyah``) of a detected box. This is the standard parametrisation of the
SORT-family trackers (DeepSORT, ByteTrack): the aspect ratio of a walking person barely
changes, so keeping it as a state variable with tiny noise stops the box from "breathing"
in width when the detector is noisy.

Noise is scaled by the box height: a person 400 px tall moves, and is mislocated by the
detector, by more pixels than one 40 px tall, so a fixed pixel noise would be too loose for
far people and too tight for near ones. Standard deviations are ``std_weight_position * h``
for positions and height and ``std_weight_velocity * h`` for their velocities; the aspect
ratio and its velocity get small fixed deviations.

All functions take a batch: ``mean (N, 8)``, ``cov (N, 8, 8)``, ``measurement (N, 4)``;
``N = 0`` works and returns empty arrays. The filter is plain linear algebra on float64
arrays (batched ``matmul`` / ``solve``, no Python loop over tracks).

**Block form.** F, Q, H and R all act on each coordinate and its own velocity alone, so a
covariance that starts diagonal (every `BoxKalmanFilter.initiate`) stays block-diagonal:
four 2x2 blocks, one per coordinate, and zeros everywhere else. The ``*_blocks`` methods
keep only those blocks, ``blocks (N, 2, 2, 4)`` with ``blocks[n, a, b, j]`` the covariance
of part ``a`` with part ``b`` (0: the value, 1: its velocity) of coordinate ``j``, and do
the same arithmetic entry by entry as the full form (the entries they leave out are exact
zeros that add nothing), at a quarter of the memory and without the batched 4x4 solve:
``S`` is then diagonal, and ``S⁻¹`` is one reciprocal per coordinate. That is also what
LAPACK's solve computes for a diagonal ``S`` with OpenBLAS (NumPy's wheels), where both
forms agree to the last bit; elsewhere they agree to rounding. `blocks_to_cov` /
`cov_to_blocks` convert between the two. The tracker runs on the block form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHI2_95",
    "BoxKalmanFilter",
    "blocks_to_cov",
    "cov_to_blocks",
    "xyah_to_xyxy",
    "xyxy_to_xyah",
]

# 95 % quantile of the chi-square distribution with 1..4 degrees of freedom: the usual
# gate on `gating_distance` (4 dof for a full xyah measurement, 2 for position only).
CHI2_95 = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877}


def _diagonal(m: np.ndarray) -> np.ndarray:
    """Writable ``(N, K)`` view of the diagonals of a C-contiguous ``(N, K, K)`` array.

    A strided view (every ``K + 1``-th element) instead of fancy indexing, which would
    gather and scatter copies on every call.
    """
    n, k, _ = m.shape
    return m.reshape(n, k * k)[:, :: k + 1]


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes → ``(N, 4)`` ``cx, cy, w / h, h`` (a zero height gives ``a = 0``)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    np.add(b[:, :2], b[:, 2:], out=out[:, :2])
    out[:, :2] *= 0.5
    wh = b[:, 2:] - b[:, :2]
    h = wh[:, 1]
    out[:, 3] = h
    out[:, 2] = 0.0
    np.divide(wh[:, 0], h, out=out[:, 2], where=h > 0)
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(N, >=4)`` ``cx, cy, a, h, ...`` → ``(N, 4)`` xyxy (negative sizes clipped to 0)."""
    s = np.asarray(xyah, dtype=np.float64)
    s = s.reshape(-1, s.shape[-1]) if s.size else np.zeros((0, 4))
    half = np.maximum(s[:, 2:4], 0.0)  # [a, h] clipped
    half[:, 1] *= 0.5  # h / 2
    half[:, 0] *= half[:, 1]  # w / 2 = a * h / 2
    out = np.empty((s.shape[0], 4))
    centre = s[:, :2]
    np.subtract(centre, half, out=out[:, :2])
    np.add(centre, half, out=out[:, 2:])
    return out


def blocks_to_cov(blocks: np.ndarray) -> np.ndarray:
    """Block-form covariances ``(N, 2, 2, 4)`` → full ``(N, 8, 8)`` (see the module docstring)."""
    b = np.asarray(blocks, dtype=np.float64)
    n = b.shape[0]
    cov = np.zeros((n, 8, 8))
    j = np.arange(4)
    for a in range(2):
        for c in range(2):
            cov[:, 4 * a + j, 4 * c + j] = b[:, a, c, :]
    return cov


def cov_to_blocks(cov: np.ndarray) -> np.ndarray:
    """Full ``(N, 8, 8)`` covariances → block form ``(N, 2, 2, 4)``.

    Raises:
        ValueError: `cov` couples two different coordinates (it is not block-diagonal).
    """
    c = np.asarray(cov, dtype=np.float64)
    n = c.shape[0]
    j = np.arange(4)
    blocks = np.empty((n, 2, 2, 4))
    rest = c.copy()
    for a in range(2):
        for b in range(2):
            blocks[:, a, b, :] = c[:, 4 * a + j, 4 * b + j]
            rest[:, 4 * a + j, 4 * b + j] = 0.0
    if np.any(rest != 0):
        raise ValueError("covariance couples different coordinates: not block-diagonal")
    return blocks


@dataclass(frozen=True)
class BoxKalmanFilter:
    """Constant-velocity Kalman filter on ``[cx, cy, a, h, vcx, vcy, va, vh]``.

    Args:
        std_weight_position: Position / height noise as a fraction of the box height
            (1/20: a detector places a box to within about 5 % of its height).
        std_weight_velocity: Velocity noise as a fraction of the box height per frame
            (1/160: people change speed slowly at video frame rates).
        std_aspect: Noise of the aspect ratio measurement and process (unitless).
        std_aspect_velocity: Process noise of the aspect-ratio velocity.
    """

    std_weight_position: float = 1.0 / 20
    std_weight_velocity: float = 1.0 / 160
    std_aspect: float = 1e-2
    std_aspect_velocity: float = 1e-5

    def _weights(
        self, pos: float, aspect: float, vel: float, aspect_vel: float
    ) -> tuple[np.ndarray, float, float]:
        """Per-column height multipliers and the two fixed aspect variances (cached)."""
        key = (pos, aspect, vel, aspect_vel)
        cache = self.__dict__.setdefault("_weight_cache", {})
        hit = cache.get(key)
        if hit is None:
            p, v = pos * self.std_weight_position, vel * self.std_weight_velocity
            w = np.array([p, p, 0.0, p, v, v, 0.0, v])
            hit = cache[key] = (
                w,
                (aspect * self.std_aspect) ** 2,
                (aspect_vel * self.std_aspect_velocity) ** 2,
            )
        return hit

    def _variances(
        self, h: np.ndarray, pos: float, aspect: float, vel: float, aspect_vel: float
    ) -> np.ndarray:
        """``(N, 8)`` diagonal variances with the given multipliers of the base deviations."""
        w, var_a, var_va = self._weights(pos, aspect, vel, aspect_vel)
        var = h[:, None] * w  # deviations (multiplier * weight * h)
        var *= var
        var[:, 2] = var_a
        var[:, 6] = var_va
        return var

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from their first measurement.

        Velocities start at zero with a wide deviation (10x the process noise) because one
        box says nothing about motion; positions start at twice the measurement noise.

        Args:
            measurement: ``(N, 4)`` ``xyah`` boxes.

        Returns:
            ``mean (N, 8)`` and diagonal ``cov (N, 8, 8)``.
        """
        z = np.asarray(measurement, dtype=np.float64).reshape(-1, 4)
        n = z.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = z
        cov = np.zeros((n, 8, 8))
        _diagonal(cov)[...] = self._variances(z[:, 3], 2.0, 2.0, 10.0, 10.0)
        return mean, cov

    def predict(
        self, mean: np.ndarray, cov: np.ndarray, dt: float | np.ndarray = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance every track by `dt` frames: ``x' = F x``, ``P' = F P Fᵀ + Q``.

        ``F = [[I, dt I], [0, I]]`` (position += dt * velocity); ``Q`` is diagonal with the
        process deviations above, scaled by `dt` (the variance of a random walk over `dt`
        steps).

        Args:
            mean: ``(N, 8)`` states.
            cov: ``(N, 8, 8)`` covariances.
            dt: Frames to advance, a scalar or ``(N,)``.

        Returns:
            The predicted ``mean (N, 8)`` and ``cov (N, 8, 8)`` (new arrays).
        """
        mean = np.asarray(mean, dtype=np.float64)
        new_mean = mean.copy()
        new_cov = np.array(cov, dtype=np.float64, order="C")  # a contiguous copy
        d = np.asarray(dt, dtype=np.float64)
        if d.ndim:  # one dt per track
            d = np.broadcast_to(d.reshape(-1), (mean.shape[0],))
            q_scale, d = d[:, None], d[:, None, None]
        else:
            q_scale = d = float(d)
        new_mean[:, :4] += mean[:, 4:] * (d if np.ndim(d) == 0 else d[:, :, 0])
        # F P Fᵀ as two in-place steps: F P adds dt * velocity rows to position rows, then
        # (F P) Fᵀ adds dt * velocity columns to position columns; no 8x8 matmul
        new_cov[:, :4, :] += d * new_cov[:, 4:, :]
        new_cov[:, :, :4] += d * new_cov[:, :, 4:]
        _diagonal(new_cov)[...] += self._variances(mean[:, 3], 1.0, 1.0, 1.0, 1.0) * q_scale
        return new_mean, new_cov

    def _measurement_variances(self, h: np.ndarray) -> np.ndarray:
        # the measured aspect ratio is noisier than its process (10x: 1e-1 vs 1e-2), since
        # the box of a walking person flickers in width from frame to frame
        return self._variances(h, 1.0, 10.0, 0.0, 0.0)[:, :4]

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted measurement ``H x`` ``(N, 4)`` and its covariance ``H P Hᵀ + R`` ``(N, 4, 4)``.

        ``H`` picks the first four state entries, so ``H P Hᵀ`` is ``cov[:, :4, :4]``; ``R``
        is diagonal, deviations ``std_weight_position * h`` (and ``10 * std_aspect``).
        """
        mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        S = np.array(cov[:, :4, :4], order="C")  # a contiguous copy
        _diagonal(S)[...] += self._measurement_variances(mean[:, 3])
        return mean[:, :4].copy(), S

    def update(
        self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct every track with its measurement (row ``i`` of each argument together).

        ``S = H P Hᵀ + R``, ``K = P Hᵀ S⁻¹``, ``x' = x + K (z - H x)``, ``P' = P - K S Kᵀ``
        (computed as ``P - K (H P)``, the same matrix); ``P'`` is symmetrised so rounding
        cannot make it drift from symmetric.

        Args:
            mean: ``(N, 8)`` predicted states.
            cov: ``(N, 8, 8)`` predicted covariances.
            measurement: ``(N, 4)`` ``xyah`` boxes.

        Returns:
            The corrected ``mean (N, 8)`` and ``cov (N, 8, 8)``.

        Raises:
            ValueError: The number of measurements differs from the number of tracks.
        """
        mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        z = np.asarray(measurement, dtype=np.float64).reshape(-1, 4)
        if z.shape[0] != mean.shape[0]:
            raise ValueError(f"{z.shape[0]} measurements for {mean.shape[0]} tracks")
        if mean.shape[0] == 0:
            return mean.copy(), cov.copy()
        z_pred, S = self.project(mean, cov)
        HP = cov[:, :4, :]  # (N, 4, 8) = H P
        # K = P Hᵀ S⁻¹  ⇔  Kᵀ = S⁻¹ (H P) since S and P are symmetric: solve, never invert
        Kt = np.linalg.solve(S, HP)  # (N, 4, 8)
        innovation = z - z_pred  # (N, 4)
        new_mean = mean + (innovation[:, None, :] @ Kt)[:, 0]
        new_cov = cov - Kt.transpose(0, 2, 1) @ HP
        new_cov = 0.5 * (new_cov + new_cov.transpose(0, 2, 1))
        return new_mean, new_cov

    # ------------------------------------------------------------------ block form
    def initiate_blocks(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`initiate` in block form: ``mean (N, 8)`` and ``blocks (N, 2, 2, 4)``."""
        z = np.asarray(measurement, dtype=np.float64).reshape(-1, 4)
        n = z.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = z
        blocks = np.zeros((n, 2, 2, 4))
        # the (value, value) and (velocity, velocity) entries: flat 0 and 3 of each 2x2
        blocks.reshape(n, 4, 4)[:, ::3] = self._variances(z[:, 3], 2.0, 2.0, 10.0, 10.0).reshape(
            n, 2, 4
        )
        return mean, blocks

    def predict_blocks(
        self, mean: np.ndarray, blocks: np.ndarray, dt: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """`predict` in block form, for one `dt` shared by every track (new arrays)."""
        d = float(dt)
        new_mean = mean.copy()
        new_blocks = blocks.copy()
        n = mean.shape[0]
        if d == 1.0:  # x * 1.0 is x: the same numbers without the multiplications
            new_mean[:, :4] += mean[:, 4:]
            new_blocks[:, 0] += new_blocks[:, 1]  # F P: value rows += velocity rows
            new_blocks[:, :, 0] += new_blocks[:, :, 1]  # (F P) Fᵀ: the same for columns
            q = self._variances(mean[:, 3], 1.0, 1.0, 1.0, 1.0)
        else:
            new_mean[:, :4] += mean[:, 4:] * d
            new_blocks[:, 0] += d * new_blocks[:, 1]
            new_blocks[:, :, 0] += d * new_blocks[:, :, 1]
            q = self._variances(mean[:, 3], 1.0, 1.0, 1.0, 1.0) * d
        new_blocks.reshape(n, 4, 4)[:, ::3] += q.reshape(n, 2, 4)
        return new_mean, new_blocks

    def update_blocks(
        self, mean: np.ndarray, blocks: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`update` in block form (row ``i`` of each argument together; new arrays).

        With ``S`` diagonal, ``Kᵀ = S⁻¹ (H P)`` is each coordinate's (value, velocity) row
        of ``P`` times ``1 / S``; ``P' = P - K (H P)`` and the symmetrisation are the full
        form's, entry by entry.

        Raises:
            ValueError: The number of measurements differs from the number of tracks.
        """
        z = np.asarray(measurement, dtype=np.float64).reshape(-1, 4)
        n = mean.shape[0]
        if z.shape[0] != n:
            raise ValueError(f"{z.shape[0]} measurements for {n} tracks")
        if n == 0:
            return mean.copy(), blocks.copy()
        hp = blocks[:, 0]  # (N, 2, 4): H P, the value row of each coordinate's block
        s = hp[:, 0] + self._measurement_variances(mean[:, 3])  # (N, 4): diagonal of S
        gain = hp * (1.0 / s)[:, None, :]  # (N, 2, 4): Kᵀ
        innovation = z - mean[:, :4]
        new_mean = mean + (gain * innovation[:, None, :]).reshape(n, 8)
        new_blocks = blocks - gain[:, :, None, :] * hp[:, None, :, :]
        new_blocks = 0.5 * (new_blocks + new_blocks.transpose(0, 2, 1, 3))
        return new_mean, new_blocks

    def gating_distance(
        self,
        mean: np.ndarray,
        cov: np.ndarray,
        measurements: np.ndarray,
        only_position: bool = False,
    ) -> np.ndarray:
        """Squared Mahalanobis distance of every measurement to every track's prediction.

        Compare with `CHI2_95` (``[4]``, or ``[2]`` with `only_position`) to gate out
        implausible pairs.

        Args:
            mean: ``(N, 8)`` states.
            cov: ``(N, 8, 8)`` covariances.
            measurements: ``(M, 4)`` ``xyah`` boxes.
            only_position: Use the centre ``cx, cy`` only (2 degrees of freedom).

        Returns:
            ``(N, M)`` squared distances.
        """
        z_pred, S = self.project(mean, cov)
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        k = 2 if only_position else 4
        z_pred, S, z = z_pred[:, :k], S[:, :k, :k], z[:, :k]
        n, m = z_pred.shape[0], z.shape[0]
        if n == 0 or m == 0:
            return np.zeros((n, m))
        d = z[None, :, :] - z_pred[:, None, :]  # (N, M, k)
        # d Sᵀ⁻¹ d via a Cholesky solve: L y = d, distance = |y|²
        L = np.linalg.cholesky(S)  # (N, k, k)
        y = np.linalg.solve(L, d.transpose(0, 2, 1))  # (N, k, M)
        return np.einsum("nkm,nkm->nm", y, y)
