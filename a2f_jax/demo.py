"""The main job end to end on the built-in synthetic dataset (what `make demo` runs).

generate dataset → preprocess → train → deploy bundle → infer held-out audio from the bundle →
evaluate against ground truth and two baselines → previews and training curves → summary.
Everything lands under `<out>/` (datasets/, workspace/, and workspace/output_demo/ for the results).
"""

from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import Any

# lazy imports: `a2f-demo --help` stays instant; each stage loads its own heavy stack (jax, sklearn, onnx) when it runs

log = logging.getLogger("a2f_jax.demo")

ACTOR = "synth"


def _stage(name: str) -> None:
    log.info("=" * 20 + f" {name} " + "=" * 20)


def run(network: str = "regression", out: str | os.PathLike = "demo", steps: int | None = None,
        config_dir: str | os.PathLike | None = None, overrides: tuple[str, ...] = (), video: bool = True) -> dict:
    """Run every stage; returns a summary dict (also written as `summary.json`)."""
    from a2f_jax import config
    from a2f_jax.data import synthetic
    from a2f_jax.preproc import run as preproc_run
    from a2f_jax.train import entry

    t_start = time.perf_counter()
    out = pathlib.Path(out).absolute()
    os.environ["A2F_DATASETS_ROOT"] = str(out / "datasets")
    os.environ["A2F_WORKSPACE_ROOT"] = str(out / "workspace")
    repo = pathlib.Path(__file__).resolve().parents[1]
    config_dir = pathlib.Path(config_dir) if config_dir else repo / "configs" / f"synthetic-{network}"
    timings: dict[str, float] = {}

    def timed(name: str, fn, *a, **kw):
        _stage(name)
        t0 = time.perf_counter()
        res = fn(*a, **kw)
        timings[name] = round(time.perf_counter() - t0, 1)
        return res

    data_root = out / "datasets" / "a2f-synthetic"
    if not (data_root / "data" / ACTOR).is_dir():
        timed("dataset", synthetic.generate, data_root, seed=0)
    configs = config.load(config_dir, list(overrides))
    preproc_dir = timed("preprocess", preproc_run, configs, ACTOR)
    configs = config.load(config_dir, list(overrides))  # "latest" now resolves to the new preproc run
    run_dir = timed("train", entry.train, configs, max_steps=steps)

    _stage("deploy")
    t0 = time.perf_counter()
    from a2f_jax.deploy import bundle

    bundle_dir = bundle.deploy_run(configs, run_dir, out_root=out / "workspace" / "output_deploy")
    timings["deploy"] = round(time.perf_counter() - t0, 1)

    results_dir = out / "workspace" / "output_demo" / pathlib.Path(run_dir).name
    summary = timed("evaluate", evaluate_and_preview, configs, network, pathlib.Path(run_dir), pathlib.Path(bundle_dir),
                    results_dir, video)
    summary.update({
        "network": network, "dataset": str(data_root), "preproc_run": str(preproc_dir), "training_run": str(run_dir),
        "bundle": str(bundle_dir), "results": str(results_dir), "timings_s": timings,
        "total_s": round(time.perf_counter() - t_start, 1),
    })
    from a2f_jax.io_utils import atomic_write_json

    atomic_write_json(results_dir / "summary.json", summary)
    print_summary(summary)
    return summary


def _predictor(network: str, run_dir: pathlib.Path, bundle_dir: pathlib.Path, configs: Any):
    """predict(audio, fps, emotion, n) -> skin [n, V, 3] using the deploy bundle through onnxruntime."""
    if network == "regression":
        from a2f_jax.infer import regression

        pred = regression.from_bundle(bundle_dir)

        def predict(audio, fps, emotion, n):
            return pred.predict(audio, fps=fps, emotion=emotion, num_frames=n).skin

        return predict
    from a2f_jax.infer import diffusion
    from a2f_jax.infer.evaluate import diffusion_predict_fn

    return diffusion_predict_fn(diffusion.from_bundle(bundle_dir, configs.inference), "streaming")


def evaluate_and_preview(configs: Any, network: str, run_dir: pathlib.Path, bundle_dir: pathlib.Path,
                         results_dir: pathlib.Path, video: bool = True) -> dict:
    import numpy as np

    from a2f_jax.data.actor import ActorData, ActorSettings
    from a2f_jax.data.audio import load_audio
    from a2f_jax.data.caches import find_cache_file, read_cache
    from a2f_jax.infer import curves, evaluate, preview

    results_dir.mkdir(parents=True, exist_ok=True)
    predict = _predictor(network, run_dir, bundle_dir, configs)
    res = evaluate.evaluate(configs, predict, keep_predictions=True)
    evaluate.write_report(res, results_dir)
    outputs = {"evaluation": str(results_dir / "evaluation.json")}
    dcfg = configs.dataset
    data = ActorData.load(ActorSettings.from_configs(dcfg, ACTOR))
    fps = float(dcfg.CACHE_FPS[ACTOR])
    shot = res["clips"][0]
    pred = res["predictions"][shot]
    gt = read_cache(find_cache_file(dcfg.SKIN_CACHE_ROOT[ACTOR], shot))
    audio = load_audio(pathlib.Path(dcfg.AUDIO_ROOT[ACTOR]) / f"{shot}.wav")
    np.save(results_dir / f"{shot}_skin.npy", pred)
    from a2f_jax.data.caches import write_maya_cache

    write_maya_cache(results_dir / f"{shot}_skin.xml", pred, fps)
    outputs["prediction_npy"] = str(results_dir / f"{shot}_skin.npy")
    outputs["prediction_maya_cache"] = str(results_dir / f"{shot}_skin.xml")
    from a2f_jax.infer.metrics import lip_distance

    frame = int(np.argmax(np.abs(lip_distance(gt, data.lip_dist_verts))))  # the widest mouth opening
    png = preview.render_comparison(pred, gt, audio, 16000, fps, data.lip_dist_verts, results_dir / f"{shot}_preview.png",
                                    frame, title=f"{network}: {shot} (held out)")
    outputs["preview_png"] = str(png)
    if video:
        outputs["preview_video"] = str(preview.render_video(pred, gt, audio, 16000, fps, data.lip_dist_verts,
                                                            results_dir / f"{shot}_preview.mp4", max_frames=150))
    outputs["training_curves"] = str(curves.plot_training_curves(run_dir, results_dir / "training_curves.png"))
    return {"metrics": res["metrics"], "held_out_clips": res["clips"],
            "lip_vertex_error_vs_mean_pose": evaluate.improvement(res), "outputs": outputs}


def print_summary(summary: dict) -> None:
    from a2f_jax.infer.metrics import format_table

    lines = ["", "a2f-jax demo finished in %.0f s (%s)" % (summary["total_s"], ", ".join(f"{k} {v:.0f} s" for k, v in summary["timings_s"].items())),
             "", "Held-out clips: " + ", ".join(summary["held_out_clips"]), format_table(summary["metrics"]),
             f"lip vertex error vs the mean-pose baseline: {100 * summary['lip_vertex_error_vs_mean_pose']:.1f} % lower", "",
             f"dataset        {summary['dataset']}", f"preprocessing  {summary['preproc_run']}",
             f"training run   {summary['training_run']}", f"deploy bundle  {summary['bundle']}",
             f"results        {summary['results']}"]
    lines += [f"  {k:22s} {v}" for k, v in summary["outputs"].items()]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> dict:
    import argparse

    p = argparse.ArgumentParser(description="Run the whole a2f-jax pipeline on the built-in synthetic dataset.")
    p.add_argument("--network", choices=("regression", "diffusion"), default="regression")
    p.add_argument("--out", default="demo", help="folder for the dataset, runs and results (default ./demo)")
    p.add_argument("--steps", type=int, help="training steps (default: the config's MAX_TRAIN_STEPS)")
    p.add_argument("--config", help="config dir (default configs/synthetic-<network>)")
    p.add_argument("--no-video", action="store_true")
    args, rest = p.parse_known_args(argv)
    overrides = tuple(a[len("--config."):] for a in rest if a.startswith("--config."))
    from a2f_jax.rundir import setup_logging

    setup_logging()
    logging.getLogger("absl").setLevel(logging.WARNING)
    return run(args.network, args.out, args.steps, args.config, overrides, video=not args.no_video)
