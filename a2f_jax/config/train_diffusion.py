"""Base of `config_train.py` for NETWORK_TYPE "diffusion" (network `diffusion_rnn`)."""

from __future__ import annotations

import ml_collections

from a2f_jax.config.train_regression import extra_train_keys


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(base_dict())


def base_dict() -> dict:
    return {
        "RUN_NAME": "default",
        "RUN_INFO": "",
        "NETWORK_VERSION": "0.1",
        "NETWORK_TYPE": "diffusion",
        # Preprocessing artifacts (see train_regression).
        "PREPROC_ROOT": "$A2F_WORKSPACE_ROOT/output_preproc",
        "PREPROC_RUN_NAME_FULL": {},
        "SKIN_PCA_COEFFS_FPATH": {},
        "SKIN_PCA_SHAPES_FPATH": {},
        "TONGUE_PCA_COEFFS_FPATH": {},
        "TONGUE_PCA_SHAPES_FPATH": {},
        "MEAN_GEOMETRY_FPATH": {},
        "DATA_INFO_FPATH": {},
        "SHOT_LIST_FPATH": {},
        # Dataset sampling.
        "TARGET_CHANNELS": ["skin_pose", "tongue_pose", "jaw", "eye"],
        "TARGET_FPS": 60.0,
        "RESCALE_TARGET_CHANNEL_DATA": True,
        "TRAIN_ON_RANDOM_SUBSEGMENT": True,
        "SUBSEGMENT_MIN_FRAME": 30,
        "SUBSEGMENT_MAX_FRAME": 600,
        "AUDIO_PREPROC_METHOD": "w2v",
        "AUDIO_PARAMS": {
            "buffer_len": 16000,
            "padding_left": 16000,
            "padding_right": 16000,
            "samplerate": 16000,
        },
        "NO_STANDARDIZE_AUDIO": True,
        "CLIPS": [],
        "AUGMENT": {
            "timeshift": 0.0,
            "pitch_shift": {
                "min_semitones": -2,
                "max_semitones": 2,
                "p": 0.2,
            },
        },
        "AUG_MUTED_SHOTS": [],
        "AUG_MUTED_SKIN_IS_NEUTRAL_FOR_NEUTRAL_EMO": True,
        "AUG_MUTED_TONGUE_IS_NEUTRAL": False,
        "AUG_MUTED_AUDIO_NOISE_TYPE": "mic",
        "AUG_MUTED_AUDIO_NOISE_SCALE": 0.1,
        "AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE": (0.0, 1.0),
        # Network and diffusion process.
        "NETWORK_NAME": "diffusion_rnn",
        "NETWORK_HYPER_PARAMS": {
            "feature_dim": 256,
            "jaw_latent_dim": 15,
            "tongue_latent_dim": 10,
            "eye_latent_dim": 4,
            "gru_feature_dim": 256,
            "num_gru_layers": 2,
            "emo_embedding_dim": 32,
            "actor_embedding_dim": 32,
            "hubert_feature_dim": 1536 // 2,
        },
        "PRETRAINED_NET_FPATH": None,
        "DIFFUSION_STEPS": 1000,
        "DIFFUSION_NOISE_SCHEDULE": "cosine",
        "TIMESTEP_RESPACING": "",
        # Streaming windows keyed by TARGET_FPS as a string.
        "STREAMING_CFG": {
            "60": {
                "audio_pad_left": 16000,
                "audio_pad_right": 16000,
                "window_size": 16000,
                "left_truncate": 15,
                "right_truncate": 15,
                "block_frame_size": 30,
            },
            "30": {
                "audio_pad_left": 16000,
                "audio_pad_right": 16000,
                "window_size": 16000,
                "left_truncate": 7,
                "right_truncate": 8,
                "block_frame_size": 15,
            },
        },
        # Optimisation (the original supports batch size 1 only; a2f-jax pads to LENGTH_BUCKETS).
        "BATCH_SIZE": 1,
        "NUM_EPOCHS": 400,
        "LEARNING_RATE": 5e-5,
        "GRADIENT_ACCUMULATION_STEPS": 4,
        # Loss weights.
        "LOSS_MOTION_ALPHA": 0.0,
        "LOSS_LIP_DIST_ALPHA": 1e-5,
        "LOSS_VELOCITY_ALPHA": 0.0,
        "LOSS_EXP_SMOOTH_ALPHA": 25.0,
        "LOSS_LIP_DIST_EXP": 10.0,
        "LOSS_LIP_DIST_EMO_WEIGHTS": None,
        "TONGUE_WEIGHT": 0.1,
        "JAW_WEIGHT": 1.0,
        # Outputs.
        "TRAIN_OUTPUT_ROOT": "$A2F_WORKSPACE_ROOT/output_train",
        "FINAL_DEPLOY_ROOT": "$A2F_WORKSPACE_ROOT/output_deploy",
        "TORCH_CACHE_ROOT": "$A2F_WORKSPACE_ROOT/torch_cache",
        "SHOT_EMOTION_NAME_FOR_ALL_ZEROS": "neutral",
        "DEFAULT_SHOT_EMOTION_NAME": "neutral",
        "LOG_PERIOD": 10,
        "REPRODUCIBLE": True,
        "RNG_SEED_TORCH": 42,
        "RNG_SEED_DATASET": 43,
        "AUDIO_DATA_CACHING": True,
        "PHONEME_DATA_CACHING": True,
        "TARGET_DATA_CACHING": False,
        "TARGET_OBJECTS_TO_CUDA": True,
        **extra_train_keys("$A2F_WORKSPACE_ROOT/pretrained/hubert-base-ls960"),
        # "sum" over micro-batches as the original, or "mean".
        "GRAD_ACCUM_REDUCTION": "sum",
        # Padding buckets (frames at TARGET_FPS) that keep shapes static when BATCH_SIZE > 1.
        "LENGTH_BUCKETS": [120, 240, 360, 600],
    }
