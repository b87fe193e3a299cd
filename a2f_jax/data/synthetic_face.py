"""Procedural face for the synthetic dataset: skin grid, ARKit-style blendshapes, tongue, jaw, eyes.

Coordinates: Y up, Z towards the viewer, X to the character's left; units cm; the face is about
22 cm tall and 15 cm wide. The skin is a grid over a deformed ellipsoid with a mouth slit (an
upper-lip row and a lower-lip row 1 mm apart) and two eye slits (lid rows 9 mm apart). The jaw
opens by rotating about a pivot near the ears; the `jawOpen` blendshape is that rotation applied
linearly (first order) to a jaw-weight field.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MOUTH_Y = -4.5
MOUTH_HALF_GAP = 0.05
MOUTH_HALF_WIDTH = 2.6
EYE_Y = 3.0
EYE_X = 3.2
EYE_HALF_GAP = 0.45
JAW_PIVOT = np.array([0.0, -0.5, 0.0])
JAW_MAX_DEG = 15.0

SKIN_POSES = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "browInnerUp",
    "browDownLeft",
    "browDownRight",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
)
TONGUE_POSES = (
    "TongueTipUp",
    "TongueTipDown",
    "TongueTipLeft",
    "TongueTipRight",
    "TongueRollUp",
    "TongueRollDown",
    "TongueRollLeft",
    "TongueRollRight",
    "TongueUp",
    "TongueDown",
    "TongueLeft",
    "TongueRight",
    "TongueIn",
    "TongueStretch",
    "TongueWide",
    "TongueNarrow",
)
# Blink curve (0 open, 1 closed) at 30 fps, also shipped as eye_blink_keys.npy.
BLINK_KEYS = np.array([0.0, 0.4, 0.85, 1.0, 0.9, 0.65, 0.4, 0.2, 0.08, 0.0], dtype=np.float32)


@dataclasses.dataclass
class Face:
    neutral: np.ndarray  # [V, 3] f32
    shapes: np.ndarray  # [P, V, 3] f32 deltas, P = len(SKIN_POSES)
    lip_dist: dict  # {"upper": [5], "lower": [5]}
    lip_size: dict  # {"upper_lip": {"top", "bottom"}, "lower_lip": {"top", "bottom"}}
    eye_dist: dict  # {"upper": [2], "lower": [2]}
    frontal_mask: np.ndarray  # [n] int32
    tongue_neutral: np.ndarray  # [Vt, 3] f32
    tongue_shapes: np.ndarray  # [16, Vt, 3] f32
    tongue_rigid: list[int]
    jaw_neutral: np.ndarray  # [5, 3] f32


def _grid_rows(num_rows: int) -> np.ndarray:
    """Row heights from chin (-11) to forehead (+11) with exact lid and lip rows."""
    special = [MOUTH_Y - MOUTH_HALF_GAP, MOUTH_Y + MOUTH_HALF_GAP, EYE_Y - EYE_HALF_GAP, EYE_Y + EYE_HALF_GAP]
    base = np.linspace(-11.0, 11.0, num_rows - len(special))
    keep = [y for y in base if min(abs(y - s) for s in special) > 0.2]
    rows = np.sort(np.array(keep + special))
    return rows


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bump(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def _depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = 9.0 * np.sqrt(np.maximum(1.0 - (x / 8.5) ** 2 - (y / 13.0) ** 2, 0.05))
    z += 2.0 * _bump(x, y, 0.0, -0.5, 1.0, 2.2)  # nose
    z -= 0.7 * (_bump(x, y, EYE_X, EYE_Y, 1.4, 1.0) + _bump(x, y, -EYE_X, EYE_Y, 1.4, 1.0))  # eye sockets
    z += 0.6 * _bump(x, y, 0.0, MOUTH_Y, 2.6, 1.0)  # lips
    z += 0.5 * _bump(x, y, 0.0, -9.5, 2.5, 1.5)  # chin
    return z


def _rotate_about_jaw(points: np.ndarray, degrees: np.ndarray | float) -> np.ndarray:
    """Open the jaw: points in front of and below the pivot go down and back. degrees: [...] broadcast."""
    theta = np.deg2rad(np.asarray(degrees, dtype=np.float64))[..., None]
    rel = np.asarray(points, dtype=np.float64) - JAW_PIVOT
    x, y, z = rel[..., 0:1], rel[..., 1:2], rel[..., 2:3]
    c, s = np.cos(theta), np.sin(theta)
    new_y, new_z = y * c - z * s, y * s + z * c
    x = np.broadcast_to(x, new_y.shape)
    return np.concatenate([x, new_y, new_z], axis=-1) + JAW_PIVOT


def build_face(num_cols: int = 33, num_rows: int = 44) -> Face:
    xs = np.linspace(-7.5, 7.5, num_cols)
    ys = _grid_rows(num_rows)
    gx, gy = np.meshgrid(xs, ys)  # [rows, cols]
    x, y = gx.reshape(-1), gy.reshape(-1)
    # Keep the face oval: drop the grid corners.
    inside = (x / 8.0) ** 2 + (y / 11.8) ** 2 <= 1.0
    row_of = np.repeat(np.arange(len(ys)), num_cols)[inside]
    col_of = np.tile(np.arange(num_cols), len(ys))[inside]
    x, y = x[inside], y[inside]
    z = _depth(x, y)
    neutral = np.stack([x, y, z], axis=1)
    index = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(row_of, col_of))}

    def vid(row_y: float, col_x: float) -> int:
        r = int(np.argmin(np.abs(ys - row_y)))
        c = int(np.argmin(np.abs(xs - col_x)))
        return index[(r, c)]

    in_slit = np.abs(x) < MOUTH_HALF_WIDTH
    below = y < MOUTH_Y
    lateral = 1.0 / (1.0 + np.exp((np.abs(x) - 5.5) / 0.6))
    # Jaw weight: step across the slit, smooth elsewhere so the skin never tears.
    jaw_w = np.where(in_slit, below.astype(float), 1.0 / (1.0 + np.exp(-(MOUTH_Y - y) / 1.0))) * lateral
    jaw_w *= _smoothstep((1.5 - y) / 3.0)  # nothing above the cheeks moves
    open_pos = _rotate_about_jaw(neutral, JAW_MAX_DEG)
    d_jaw = (open_pos - neutral) * jaw_w[:, None]

    near_lips = np.exp(-(((y - MOUTH_Y) / 0.8) ** 2)) * _smoothstep((MOUTH_HALF_WIDTH + 0.8 - np.abs(x)) / 1.2)
    d_close = -d_jaw * near_lips[:, None]
    d_close[:, 1] -= 0.03 * near_lips * (y > MOUTH_Y)  # upper lip meets the lower one

    mouth = _bump(x, y, 0.0, MOUTH_Y, 2.2, 1.1)
    d_funnel = np.stack([-0.3 * x / 2.6 * mouth, 0.35 * np.sign(y - MOUTH_Y) * mouth, 0.5 * mouth], axis=1)
    d_pucker = np.stack([-0.45 * x / 2.6 * mouth, np.zeros_like(x), 0.8 * mouth], axis=1)

    def side(sign: float) -> tuple[np.ndarray, ...]:
        # Three regions around the corner so the poses stay well separated for a solver.
        corner = _bump(x, y, sign * MOUTH_HALF_WIDTH, MOUTH_Y, 1.0, 0.8)
        stretch = np.stack([sign * 0.6 * corner, -0.1 * corner, -0.2 * corner], axis=1)
        cheek_corner = _bump(x, y, sign * (MOUTH_HALF_WIDTH + 0.6), MOUTH_Y + 0.9, 1.3, 1.1)
        smile = np.stack([sign * 0.35 * cheek_corner, 0.55 * cheek_corner, 0.15 * cheek_corner], axis=1)
        chin_corner = _bump(x, y, sign * (MOUTH_HALF_WIDTH - 0.2), MOUTH_Y - 1.0, 1.1, 1.0)
        frown = np.stack([sign * 0.05 * chin_corner, -0.45 * chin_corner, -0.1 * chin_corner], axis=1)
        lip_half = near_lips * _smoothstep(0.5 + sign * x / 1.0)
        press = np.stack([np.zeros_like(x), -0.08 * np.sign(y - MOUTH_Y) * lip_half, -0.3 * lip_half], axis=1)
        brow = _bump(x, y, sign * 3.0, 5.8, 1.8, 0.9)
        brow_down = np.stack([-sign * 0.2 * brow, -0.5 * brow, 0.05 * brow], axis=1)
        cheek = _bump(x, y, sign * 3.6, 0.3, 1.4, 1.1)
        squint = np.stack([np.zeros_like(x), 0.35 * cheek, 0.1 * cheek], axis=1)
        upper_lid = _bump(x, y, sign * EYE_X, EYE_Y + EYE_HALF_GAP, 1.1, 0.6) * (y > EYE_Y)
        lower_lid = _bump(x, y, sign * EYE_X, EYE_Y - EYE_HALF_GAP, 1.1, 0.3) * (y < EYE_Y)
        blink = np.stack([np.zeros_like(x), -0.85 * upper_lid + 0.05 * lower_lid, 0.1 * upper_lid], axis=1)
        return stretch, smile, frown, press, brow_down, squint, blink

    left, right = side(+1.0), side(-1.0)
    inner_brow = _bump(x, y, 1.5, 5.6, 1.0, 0.9) + _bump(x, y, -1.5, 5.6, 1.0, 0.9)
    d_brow_inner = np.stack([np.zeros_like(x), 0.6 * inner_brow, 0.05 * inner_brow], axis=1)
    by_name = {
        "jawOpen": d_jaw,
        "mouthClose": d_close,
        "mouthFunnel": d_funnel,
        "mouthPucker": d_pucker,
        "mouthStretchLeft": left[0],
        "mouthStretchRight": right[0],
        "mouthSmileLeft": left[1],
        "mouthSmileRight": right[1],
        "mouthFrownLeft": left[2],
        "mouthFrownRight": right[2],
        "mouthPressLeft": left[3],
        "mouthPressRight": right[3],
        "browInnerUp": d_brow_inner,
        "browDownLeft": left[4],
        "browDownRight": right[4],
        "cheekSquintLeft": left[5],
        "cheekSquintRight": right[5],
        "eyeBlinkLeft": left[6],
        "eyeBlinkRight": right[6],
    }
    shapes = np.stack([by_name[name] for name in SKIN_POSES]).astype(np.float32)

    lip_x = np.linspace(-1.6, 1.6, 5)
    y_up, y_lo = MOUTH_Y + MOUTH_HALF_GAP, MOUTH_Y - MOUTH_HALF_GAP
    lip_dist = {"upper": [vid(y_up, cx) for cx in lip_x], "lower": [vid(y_lo, cx) for cx in lip_x]}
    lip_size = {
        "upper_lip": {"top": [vid(y_up + 0.9, cx) for cx in lip_x], "bottom": lip_dist["upper"]},
        "lower_lip": {"top": lip_dist["lower"], "bottom": [vid(y_lo - 0.9, cx) for cx in lip_x]},
    }
    eye_dist = {
        "upper": [vid(EYE_Y + EYE_HALF_GAP, -EYE_X), vid(EYE_Y + EYE_HALF_GAP, EYE_X)],
        "lower": [vid(EYE_Y - EYE_HALF_GAP, -EYE_X), vid(EYE_Y - EYE_HALF_GAP, EYE_X)],
    }
    frontal = np.nonzero(z > 4.0)[0].astype(np.int32)

    tongue_neutral, tongue_shapes, rigid = build_tongue()
    jaw_neutral = np.array(
        [[0.0, -10.5, 7.5], [6.0, -6.0, 2.5], [-6.0, -6.0, 2.5], [4.0, -9.0, 5.5], [-4.0, -9.0, 5.5]], dtype=np.float32
    )
    return Face(
        neutral=neutral.astype(np.float32),
        shapes=shapes,
        lip_dist=lip_dist,
        lip_size=lip_size,
        eye_dist=eye_dist,
        frontal_mask=frontal,
        tongue_neutral=tongue_neutral,
        tongue_shapes=tongue_shapes,
        tongue_rigid=rigid,
        jaw_neutral=jaw_neutral,
    )


def build_tongue(num_len: int = 16, num_across: int = 9) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Tongue: top and bottom surfaces of a flattened half-ellipsoid behind the lips; [2*16*9 = 288, 3].

    s runs from root (0) to tip (1). Deformations vanish for s < 0.15, where the rigid vertices are.
    """
    s = np.linspace(0.0, 1.0, num_len)
    w = np.linspace(-1.0, 1.0, num_across)
    gs, gw = np.meshgrid(s, w, indexing="ij")
    gs, gw = gs.reshape(-1), gw.reshape(-1)
    half_width = 2.0 * np.sqrt(np.clip(1.0 - (gs * 0.9) ** 4, 0.05, 1.0))
    x = gw * half_width
    z = 2.0 + 5.0 * gs
    thickness = 0.7 * np.sqrt(np.clip(1.0 - gw**2, 0.0, 1.0)) * np.sqrt(np.clip(1.0 - gs**3, 0.0, 1.0)) + 0.05
    y_mid = MOUTH_Y - 1.2
    top = np.stack([x, y_mid + thickness, z], axis=1)
    bottom = np.stack([x, y_mid - thickness * 0.6, z], axis=1)
    neutral = np.concatenate([top, bottom]).astype(np.float32)
    ss = np.concatenate([gs, gs])
    ww = np.concatenate([gw, gw])
    k = np.clip((ss - 0.15) / 0.85, 0.0, 1.0)  # deformation weight along the length
    zero = np.zeros_like(ss)

    def vec(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        return np.stack([dx + zero, dy + zero, dz + zero], axis=1)

    by_name = {
        "TongueTipUp": vec(zero, 1.0 * k**2, zero),
        "TongueTipDown": vec(zero, -0.6 * k**2, zero),
        "TongueTipLeft": vec(0.6 * k**2, zero, zero),
        "TongueTipRight": vec(-0.6 * k**2, zero, zero),
        "TongueRollUp": vec(zero, 0.4 * ww**2 * k, zero),
        "TongueRollDown": vec(zero, -0.4 * ww**2 * k, zero),
        "TongueRollLeft": vec(zero, 0.3 * ww * k, zero),
        "TongueRollRight": vec(zero, -0.3 * ww * k, zero),
        "TongueUp": vec(zero, 0.5 * k, zero),
        "TongueDown": vec(zero, -0.5 * k, zero),
        "TongueLeft": vec(0.4 * k, zero, zero),
        "TongueRight": vec(-0.4 * k, zero, zero),
        "TongueIn": vec(zero, zero, -0.8 * k),
        "TongueStretch": vec(zero, zero, 1.2 * k**2),
        "TongueWide": vec(0.3 * ww * k, zero, zero),
        "TongueNarrow": vec(-0.25 * ww * k, zero, zero),
    }
    shapes = np.stack([by_name[name] for name in TONGUE_POSES]).astype(np.float32)
    num_top = gs.size
    rigid = [int(num_top + i) for i in np.nonzero(gs <= 0.1)[0]]  # underside near the root
    return neutral, shapes, rigid


def controls_to_weights(
    controls: dict[str, np.ndarray], emotion_weights: dict[str, np.ndarray], blinks: np.ndarray, asymmetry: float = 0.0
) -> np.ndarray:
    """Skin blendshape weights [T, P] in [0, 1] from speech controls, emotion offsets and blinks.

    `asymmetry` a in [-0.15, 0.15] scales Left poses by 1 + a and Right ones by 1 - a (blinks by a/3),
    so left and right are distinct directions in the data, as on a real face.
    """
    num_frames = blinks.shape[0]
    w = {name: np.zeros(num_frames) for name in SKIN_POSES}
    w["jawOpen"] += controls["jaw"]
    w["mouthClose"] += controls["close"]
    w["mouthFunnel"] += controls["funnel"]
    w["mouthPucker"] += controls["pucker"]
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        w[f"mouthStretch{side}"] += controls["stretch"] * (1.0 + sign * asymmetry)
        w[f"mouthPress{side}"] += controls["press"] * (1.0 + sign * asymmetry)
        w[f"eyeBlink{side}"] += blinks * (1.0 + sign * asymmetry / 3.0)
    for name, curve in emotion_weights.items():
        sign = 1.0 if name.endswith("Left") else -1.0 if name.endswith("Right") else 0.0
        w[name] += curve * (1.0 + sign * asymmetry)
    return np.clip(np.stack([w[name] for name in SKIN_POSES], axis=1), 0.0, 1.0)


def controls_to_tongue_weights(controls: dict[str, np.ndarray]) -> np.ndarray:
    """Tongue blendshape weights [T, 16] in [0, 1]."""
    num_frames = controls["jaw"].shape[0]
    w = {name: np.zeros(num_frames) for name in TONGUE_POSES}
    w["TongueTipUp"] += controls["tongue_tip"]
    w["TongueUp"] += 0.8 * controls["tongue_back"] + controls["tongue_up"]
    w["TongueIn"] += 0.3 * controls["tongue_back"]
    w["TongueDown"] += controls["tongue_down"]
    w["TongueWide"] += 0.5 * controls["tongue_down"]
    w["TongueRollUp"] += 0.4 * controls["tongue_tip"]
    return np.clip(np.stack([w[name] for name in TONGUE_POSES], axis=1), 0.0, 1.0)


def jaw_degrees(jaw_weight: np.ndarray) -> np.ndarray:
    return JAW_MAX_DEG * jaw_weight


def jaw_keypoint_deltas(jaw_neutral: np.ndarray, jaw_weight: np.ndarray) -> np.ndarray:
    """[T, 5, 3] keypoint deltas from the neutral for the jaw rotation."""
    rotated = _rotate_about_jaw(jaw_neutral[None].astype(np.float64), jaw_degrees(jaw_weight)[:, None])
    return (rotated - jaw_neutral[None]).astype(np.float32)


def tongue_frames(face: Face, tongue_weights: np.ndarray, jaw_weight: np.ndarray) -> np.ndarray:
    """[T, Vt, 3]: deformed tongue carried rigidly by the jaw (preproc removes that rigid part)."""
    local = face.tongue_neutral[None].astype(np.float64) + np.einsum("tp,pvc->tvc", tongue_weights, face.tongue_shapes)
    return _rotate_about_jaw(local, jaw_degrees(jaw_weight)[:, None]).astype(np.float32)
