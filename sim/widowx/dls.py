"""Numba kernels for the damped-least-squares IK: pose error and one DLS step.

They replace a dozen small NumPy calls per iteration (each a microsecond of Python overhead) with
one compiled call; MuJoCo still provides the kinematics and the Jacobian.
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _mat_to_quat(m, out):
    """Rotation matrix (row-major, 9 values) to a unit quaternion (w, x, y, z), Shepperd's method."""
    trace = m[0] + m[4] + m[8]
    if trace > 0.0:
        s = math.sqrt(trace + 1.0) * 2.0
        out[0], out[1], out[2], out[3] = 0.25 * s, (m[7] - m[5]) / s, (m[2] - m[6]) / s, (m[3] - m[1]) / s
    elif m[0] > m[4] and m[0] > m[8]:
        s = math.sqrt(1.0 + m[0] - m[4] - m[8]) * 2.0
        out[0], out[1], out[2], out[3] = (m[7] - m[5]) / s, 0.25 * s, (m[1] + m[3]) / s, (m[2] + m[6]) / s
    elif m[4] > m[8]:
        s = math.sqrt(1.0 + m[4] - m[0] - m[8]) * 2.0
        out[0], out[1], out[2], out[3] = (m[2] - m[6]) / s, (m[1] + m[3]) / s, 0.25 * s, (m[5] + m[7]) / s
    else:
        s = math.sqrt(1.0 + m[8] - m[0] - m[4]) * 2.0
        out[0], out[1], out[2], out[3] = (m[3] - m[1]) / s, (m[2] + m[6]) / s, (m[5] + m[7]) / s, 0.25 * s


@numba.njit(cache=True)
def pose_error(target_pos, target_quat, with_rot, site_pos, site_mat, rot_weight, err):
    """Fill err with (target - current position, rot_weight * rotation vector current -> target, in the
    world frame); return (position error m, rotation error rad)."""
    for i in range(3):
        err[i] = target_pos[i] - site_pos[i]
    pos_err = math.sqrt(err[0] * err[0] + err[1] * err[1] + err[2] * err[2])
    if not with_rot:
        return pos_err, 0.0
    cur = np.empty(4)
    _mat_to_quat(site_mat, cur)
    # q_err = target * conjugate(current)
    tw, tx, ty, tz = target_quat[0], target_quat[1], target_quat[2], target_quat[3]
    cw, cx, cy, cz = cur[0], -cur[1], -cur[2], -cur[3]
    ew = tw * cw - tx * cx - ty * cy - tz * cz
    ex = tw * cx + tx * cw + ty * cz - tz * cy
    ey = tw * cy - tx * cz + ty * cw + tz * cx
    ez = tw * cz + tx * cy - ty * cx + tz * cw
    if ew < 0.0:  # the shorter way round
        ew, ex, ey, ez = -ew, -ex, -ey, -ez
    sin_half = math.sqrt(ex * ex + ey * ey + ez * ez)
    angle = 2.0 * math.atan2(sin_half, ew)
    scale = angle / sin_half if sin_half > 1e-12 else 2.0
    err[3], err[4], err[5] = ex * scale * rot_weight, ey * scale * rot_weight, ez * scale * rot_weight
    return pos_err, angle


@numba.njit(cache=True)
def dls_step(jac, dof0, rows, rot_weight, err, damping2, max_step, q, lower, upper):
    """q += J^T (J J^T + damping2 I)^-1 err over the arm's 6 dofs (columns dof0..dof0+5), the step
    scaled to at most max_step rad per joint, then clipped to the joint limits. In place."""
    n = q.shape[0]
    jm = np.empty((rows, n))
    for r in range(rows):
        scale = rot_weight if r >= 3 else 1.0
        for c in range(n):
            jm[r, c] = jac[r, dof0 + c] * scale
    a = np.empty((rows, rows))
    for i in range(rows):
        for j in range(i + 1):
            s = 0.0
            for c in range(n):
                s += jm[i, c] * jm[j, c]
            a[i, j] = a[j, i] = s
        a[i, i] += damping2
    # Cholesky solve of the small symmetric positive definite system a y = err.
    low = np.zeros((rows, rows))
    for i in range(rows):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= low[i, k] * low[j, k]
            low[i, j] = math.sqrt(max(s, 1e-300)) if i == j else s / low[j, j]
    y = np.empty(rows)
    for i in range(rows):
        s = err[i]
        for k in range(i):
            s -= low[i, k] * y[k]
        y[i] = s / low[i, i]
    for i in range(rows - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, rows):
            s -= low[k, i] * y[k]
        y[i] = s / low[i, i]
    dq = np.zeros(n)
    biggest = 0.0
    for c in range(n):
        for r in range(rows):
            dq[c] += jm[r, c] * y[r]
        biggest = max(biggest, abs(dq[c]))
    scale = max_step / biggest if biggest > max_step else 1.0
    for c in range(n):
        q[c] = min(max(q[c] + scale * dq[c], lower[c]), upper[c])
