"""Constant-velocity box Kalman filter: a hand-computed step, batching, covariance health."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.ops.kalman import (
    CHI2_95,
    BoxKalmanFilter,
    blocks_to_cov,
    cov_to_blocks,
    xyah_to_xyxy,
    xyxy_to_xyah,
)

KF = BoxKalmanFilter()  # std_weight_position 1/20, std_weight_velocity 1/160


def test_initiate_predict_update_by_hand():
    # A box centred at (10, 20), aspect 0.5, height 100: deviations are 5 px (position)
    # and 0.625 px/frame (velocity) per unit of the noise weights.
    z0 = np.array([[10.0, 20.0, 0.5, 100.0]])
    mean, cov = KF.initiate(z0)
    np.testing.assert_allclose(mean, [[10, 20, 0.5, 100, 0, 0, 0, 0]])
    # initiate: 2x the position deviation (10 px), 10x the velocity one (6.25 px/frame)
    np.testing.assert_allclose(
        np.diag(cov[0]), [100, 100, 4e-4, 100, 39.0625, 39.0625, 1e-8, 39.0625]
    )

    mean, cov = KF.predict(mean, cov)
    # Each coordinate i is a (position, velocity) pair with F = [[1, 1], [0, 1]]:
    #   F P Fᵀ = [[p + v, v], [v, v]] for P = diag(p, v), plus Q = diag(25, 0.390625).
    np.testing.assert_allclose(mean, [[10, 20, 0.5, 100, 0, 0, 0, 0]])
    cx_block = np.array([[100 + 39.0625 + 25, 39.0625], [39.0625, 39.0625 + 0.390625]])
    np.testing.assert_allclose(cov[0][np.ix_([0, 4], [0, 4])], cx_block)
    a_block = np.array([[4e-4 + 1e-8 + 1e-4, 1e-8], [1e-8, 1e-8 + 1e-10]])
    np.testing.assert_allclose(cov[0][np.ix_([2, 6], [2, 6])], a_block)
    assert cov[0, 0, 1] == 0 and cov[0, 0, 5] == 0  # the coordinates stay uncorrelated

    # Update with the centre moved 2 px right. For cx alone:
    #   S = 164.0625 + 25 (measurement variance) = 189.0625
    #   K = [164.0625, 39.0625] / 189.0625
    #   cx = 10 + 2 * 164.0625 / 189.0625, vcx = 2 * 39.0625 / 189.0625
    #   P' = P - K S Kᵀ
    #      = [[164.0625 * 25, 39.0625 * 25], [., 39.453125 * 189.0625 - 39.0625²]] / 189.0625
    z1 = np.array([[12.0, 20.0, 0.5, 100.0]])
    mean, cov = KF.update(mean, cov, z1)
    np.testing.assert_allclose(mean[0, 0], 10 + 2 * 164.0625 / 189.0625)
    np.testing.assert_allclose(mean[0, 4], 2 * 39.0625 / 189.0625)
    np.testing.assert_allclose(mean[0, [1, 2, 3, 5, 6, 7]], [20, 0.5, 100, 0, 0, 0], atol=1e-12)
    expected = (
        np.array(
            [
                [164.0625 * 25, 39.0625 * 25],
                [39.0625 * 25, 39.453125 * 189.0625 - 39.0625**2],
            ]
        )
        / 189.0625
    )
    np.testing.assert_allclose(cov[0][np.ix_([0, 4], [0, 4])], expected)
    # the aspect ratio is measured with deviation 0.1: S = 5.0001e-4 + 1e-2
    s_a = 5.0001e-4 + 1e-2
    np.testing.assert_allclose(cov[0, 2, 2], 5.0001e-4 * 1e-2 / s_a)


def _textbook_step(mean, cov, z, kf: BoxKalmanFilter):
    """One predict + update of a single track with explicit 8x8 matrices and inverses."""
    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)
    h = mean[3]
    sp, sv = kf.std_weight_position * h, kf.std_weight_velocity * h
    Q = np.diag(np.square([sp, sp, kf.std_aspect, sp, sv, sv, kf.std_aspect_velocity, sv]))
    x = F @ mean
    P = F @ cov @ F.T + Q
    hp = kf.std_weight_position * x[3]
    R = np.diag(np.square([hp, hp, 10 * kf.std_aspect, hp]))
    S = H @ P @ H.T + R
    K = P @ H.T @ np.linalg.inv(S)
    x = x + K @ (z - H @ x)
    P = (np.eye(8) - K @ H) @ P
    return x, P


def _random_tracks(rng, n):
    z = np.stack(
        [
            rng.uniform(0, 500, n),
            rng.uniform(0, 500, n),
            rng.uniform(0.3, 0.6, n),
            rng.uniform(30, 300, n),
        ],
        axis=1,
    )
    mean, cov = KF.initiate(z)
    mean[:, 4:] = rng.normal(0, 2, (n, 4)) * [1, 1, 0.001, 0.1]
    return mean, cov


def test_predict_update_match_textbook_formulas():
    rng = np.random.default_rng(0)
    mean, cov = _random_tracks(rng, 4)
    for _ in range(3):  # a few steps so the covariance is no longer diagonal
        z = mean[:, :4] + rng.normal(0, 3, (4, 4)) * [1, 1, 0.01, 1]
        ref = [_textbook_step(mean[i], cov[i], z[i], KF) for i in range(4)]
        mean, cov = KF.update(*KF.predict(mean, cov), z)
        np.testing.assert_allclose(mean, np.stack([r[0] for r in ref]), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(cov, np.stack([r[1] for r in ref]), rtol=1e-7, atol=1e-9)


def test_batch_equals_per_row_loop():
    rng = np.random.default_rng(1)
    n = 6
    mean, cov = _random_tracks(rng, n)
    dt = rng.integers(1, 4, n).astype(float)
    z = mean[:, :4] + rng.normal(0, 2, (n, 4)) * [1, 1, 0.01, 1]
    pm, pc = KF.predict(mean, cov, dt)
    um, uc = KF.update(pm, pc, z)
    zs = z[:3] + 5.0
    gd = KF.gating_distance(pm, pc, zs)
    for i in range(n):
        m1, c1 = KF.predict(mean[i : i + 1], cov[i : i + 1], dt[i])
        np.testing.assert_allclose(m1, pm[i : i + 1])
        np.testing.assert_allclose(c1, pc[i : i + 1])
        m2, c2 = KF.update(m1, c1, z[i : i + 1])
        np.testing.assert_allclose(m2, um[i : i + 1], rtol=1e-12)
        np.testing.assert_allclose(c2, uc[i : i + 1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(KF.gating_distance(m1, c1, zs), gd[i : i + 1], rtol=1e-10)


def test_gating_distance_is_squared_mahalanobis():
    rng = np.random.default_rng(2)
    mean, cov = KF.predict(*_random_tracks(rng, 3))
    z = mean[:, :4] + rng.normal(0, 5, (3, 4)) * [1, 1, 0.01, 1]
    gd = KF.gating_distance(mean, cov, z)
    gd2 = KF.gating_distance(mean, cov, z, only_position=True)
    z_pred, S = KF.project(mean, cov)
    for i in range(3):
        for j in range(3):
            d = z[j] - z_pred[i]
            np.testing.assert_allclose(gd[i, j], d @ np.linalg.inv(S[i]) @ d, rtol=1e-10)
            np.testing.assert_allclose(
                gd2[i, j], d[:2] @ np.linalg.inv(S[i][:2, :2]) @ d[:2], rtol=1e-10
            )
    assert np.all(np.diag(gd) < 100 * CHI2_95[4])
    assert KF.gating_distance(mean, cov, np.zeros((0, 4))).shape == (3, 0)


def test_covariance_stays_symmetric_positive_definite():
    rng = np.random.default_rng(3)
    n = 5
    mean, cov = _random_tracks(rng, n)
    for step in range(300):
        mean, cov = KF.predict(mean, cov, 1 + step % 3)
        if step % 4:  # some frames unmatched: the covariance grows, then shrinks again
            z = mean[:, :4] + rng.normal(0, 1, (n, 4)) * [4, 4, 0.02, 4]
            z[:, 3] = np.abs(z[:, 3]) + 10
            mean, cov = KF.update(mean, cov, z)
        np.testing.assert_array_equal(cov, cov.transpose(0, 2, 1))
        assert np.linalg.eigvalsh(cov).min() > 0


def test_empty_batch_and_shape_errors():
    mean, cov = KF.initiate(np.zeros((0, 4)))
    assert mean.shape == (0, 8) and cov.shape == (0, 8, 8)
    pm, pc = KF.predict(mean, cov)
    um, uc = KF.update(pm, pc, np.zeros((0, 4)))
    assert um.shape == (0, 8) and uc.shape == (0, 8, 8)
    with pytest.raises(ValueError, match="measurements"):
        KF.update(*KF.initiate(np.ones((2, 4))), np.ones((1, 4)))


def test_box_conversions_round_trip():
    xyxy = np.array([[10, 20, 50, 120], [0, 0, 0, 0]], dtype=float)
    xyah = xyxy_to_xyah(xyxy)
    np.testing.assert_allclose(xyah, [[30, 70, 0.4, 100], [0, 0, 0, 0]])
    np.testing.assert_allclose(xyah_to_xyxy(xyah), xyxy)
    state = np.concatenate([xyah, np.ones((2, 4))], axis=1)  # (N, 8) states work too
    np.testing.assert_allclose(xyah_to_xyxy(state), xyxy)
    assert xyah_to_xyxy(np.zeros((0, 8))).shape == (0, 4)


def test_block_form_equals_full_form():
    """The tracker's block form: the full form's numbers, without the structural zeros."""
    rng = np.random.default_rng(4)
    n = 7
    z = np.stack(
        [rng.uniform(0, 900, n), rng.uniform(0, 500, n), rng.uniform(0.2, 0.8, n),
         rng.uniform(10, 400, n)], axis=1,
    )  # fmt: skip
    mean, cov = KF.initiate(z)
    bmean, blocks = KF.initiate_blocks(z)
    np.testing.assert_array_equal(bmean, mean)
    np.testing.assert_array_equal(blocks_to_cov(blocks), cov)
    for step in range(60):
        dt = (1.0, 1.0, 2.0, 3.0)[step % 4]
        mean, cov = KF.predict(mean, cov, dt)
        bmean, blocks = KF.predict_blocks(bmean, blocks, dt)
        np.testing.assert_array_equal(bmean, mean)
        np.testing.assert_array_equal(blocks_to_cov(blocks), cov)
        if step % 5:
            meas = mean[:, :4] + rng.normal(0, 3, (n, 4)) * [1, 1, 0.01, 1]
            mean, cov = KF.update(mean, cov, meas)
            bmean, blocks = KF.update_blocks(bmean, blocks, meas)
            # the full form solves S x = H P; the block form multiplies by 1 / S
            np.testing.assert_allclose(bmean, mean, rtol=1e-13, atol=1e-12)
            np.testing.assert_allclose(blocks_to_cov(blocks), cov, rtol=1e-12, atol=1e-12)
            bmean, blocks = mean.copy(), cov_to_blocks(cov)  # keep the two in lockstep
    assert blocks.shape == (n, 2, 2, 4)
    np.testing.assert_array_equal(blocks, blocks.transpose(0, 2, 1, 3))  # symmetric blocks


def test_block_form_conversions_and_empty_batches():
    mean, blocks = KF.initiate_blocks(np.zeros((0, 4)))
    assert mean.shape == (0, 8) and blocks.shape == (0, 2, 2, 4)
    pm, pb = KF.predict_blocks(mean, blocks)
    um, ub = KF.update_blocks(pm, pb, np.zeros((0, 4)))
    assert um.shape == (0, 8) and ub.shape == (0, 2, 2, 4)
    with pytest.raises(ValueError, match="measurements"):
        KF.update_blocks(*KF.initiate_blocks(np.ones((2, 4))), np.ones((1, 4)))
    _, cov = KF.predict(*KF.initiate(np.array([[10.0, 20, 0.5, 100]])))
    np.testing.assert_array_equal(blocks_to_cov(cov_to_blocks(cov)), cov)
    coupled = cov.copy()
    coupled[0, 0, 1] = coupled[0, 1, 0] = 1.0  # cx with cy: not this filter's structure
    with pytest.raises(ValueError, match="block-diagonal"):
        cov_to_blocks(coupled)
