"""Small synthetic deploy inputs for the bundle/checker/export tests: arrays, network_info, and tiny stand-in
networks (plain JAX functions with the deploy I/O contract) exported through `a2f_jax.deploy.onnx_utils`."""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from a2f_jax.deploy import contract as C

EMOTIONS = ["angry", "happy", "sad"]
VS, VT, KS, KT = 6, 3, 4, 2  # skin/tongue vertices and PCA shapes


def model_data(seed: int = 0, vs: int = VS, vt: int = VT, ks: int = KS, kt: int = KT) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean_skin = rng.standard_normal((vs, 3)).astype(np.float32)
    mean_skin[:, 1] = np.linspace(-1, 1, vs)  # positive Y range (face mask)
    mean_tongue = rng.standard_normal((vt, 3)).astype(np.float32)
    return {
        "shapes_matrix_skin": rng.standard_normal((ks, vs, 3)).astype(np.float32),
        "shapes_mean_skin": mean_skin,
        "neutral_skin": mean_skin,
        "lip_open_pose_delta": 0.1 * rng.standard_normal((vs, 3)).astype(np.float32),
        "eye_close_pose_delta": 0.1 * rng.standard_normal((vs, 3)).astype(np.float32),
        "shapes_matrix_tongue": rng.standard_normal((kt, vt, 3)).astype(np.float32),
        "shapes_mean_tongue": mean_tongue,
        "neutral_tongue": mean_tongue,
        "neutral_jaw": rng.standard_normal((5, 3)).astype(np.float32),
        "blink_keys": np.linspace(0, 1, 10).astype(np.float32),
        "saccade_rot_matrix": rng.standard_normal((50, 2)).astype(np.float32),
    }


def emo_db(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    # deliberately unsorted: the writer must sort by start
    return {"emo_db": rng.standard_normal((30, 16)).astype(np.float32), "emo_specs": {"shot_b": (12, 18), "shot_a": (0, 12)}}


def regression_info(actor: str = "claire") -> dict:
    return C.regression_network_info(actor, EMOTIONS, [0.0, 0.0, 0.0], KS, VS, KT, VT)


def diffusion_info(identities: tuple[str, ...] = ("claire", "mark")) -> dict:
    return C.diffusion_network_info(list(identities), EMOTIONS, [0.0, 0.0, 0.0], VS, VT)


def regression_standin(info: dict, seed: int = 0):
    """result = heads(tanh(window · W1), emotion): same I/O contract as the regression network."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    shapes = C.onnx_tensor_shapes(info)
    n, e, r = shapes["input"][2], shapes["emotion"][2], shapes["result"][2]
    w1 = jnp.asarray(rng.standard_normal((n, 8)) / np.sqrt(n), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((8 + e, r)), jnp.float32)

    def fn(x, emotion):  # [B,1,N], [B,1,E] -> [B,1,R]
        h = jnp.tanh(x @ w1)
        return jnp.concatenate([h, emotion], -1) @ w2

    return fn


def diffusion_standin(info: dict, seed: int = 0):
    """(prediction, output_latents) from (window, identity, emotion, input_latents, noise), contract shapes."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    shapes = C.onnx_tensor_shapes(info)
    n, ni = shapes["window"][1], shapes["identity"][1]
    e = shapes["emotion"][2]
    s, _, _, hd = shapes["input_latents"]
    d = shapes["prediction"][2]
    r = lambda *sh: jnp.asarray(rng.standard_normal(sh) / np.sqrt(sh[0]), jnp.float32)  # noqa: E731
    wa, wf, wh, wo, wi, we, wl = r(n, 8), r(8, hd), r(hd, hd), r(8, d), r(ni, d), r(e, d), r(hd, d)

    def fn(window, identity, emotion, latents, noise):
        feat = jnp.tanh(window @ wa)  # [B,8]
        new = jnp.tanh(latents @ wh + (feat @ wf)[None, None])  # [S,L,B,H]
        pred = (0.1 * noise[:, s] + (feat @ wo + identity @ wi + emotion.mean(1) @ we + new[0, -1] @ wl)[:, None, :])
        return pred, new

    return fn


@functools.lru_cache(maxsize=4)
def _onnx_bytes(kind: str, identities: tuple[str, ...]) -> bytes:
    from a2f_jax.deploy.onnx_utils import export_onnx

    info = regression_info(identities[0]) if kind == "regression" else diffusion_info(identities)
    shapes = C.onnx_tensor_shapes(info)
    io = C.ONNX_IO[kind]
    ins = [(n, shapes[n]) for n, (role, _) in io.items() if role == "input"]
    outs = [(n, shapes[n]) for n, (role, _) in io.items() if role == "output"]
    fn = regression_standin(info) if kind == "regression" else diffusion_standin(info)
    return export_onnx(fn, ins, outs).SerializeToString()


def bundle_kwargs(tmp: pathlib.Path, kind: str, identities: tuple[str, ...] = ("claire",)) -> dict:
    """Keyword arguments for `a2f_jax.deploy.bundle.write_bundle` describing a small valid bundle."""
    info = regression_info(identities[0]) if kind == "regression" else diffusion_info(identities)
    data = {}
    for i, actor in enumerate(identities):
        path = tmp / f"network_data_{actor}.npz"
        np.savez(path, **model_data(i))
        data[actor] = path
    kw = dict(network_info=info, onnx_model=_onnx_bytes(kind, tuple(identities)), model_data=data,
              inference_config={"input_strength": 1.0})
    if kind == "regression":
        kw["emo_db"] = emo_db()
    return kw
