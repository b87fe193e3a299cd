"""Base of `config_train.py` for NETWORK_TYPE "regression" (network `conv_w2v_autocorr`)."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(base_dict())


def base_dict() -> dict:
    return {
        "RUN_NAME": "default",
        "RUN_INFO": "",
        # Stored in network_info.json of the deploy bundle.
        "NETWORK_VERSION": "0.1",
        "NETWORK_TYPE": "regression",
        # Preprocessing artifacts: PREPROC_ROOT/<PREPROC_RUN_NAME_FULL[actor]>/...; the per-file paths
        # below override that resolution for one actor.
        "PREPROC_ROOT": "$A2F_WORKSPACE_ROOT/output_preproc",
        "PREPROC_RUN_NAME_FULL": {},
        "SKIN_PCA_COEFFS_FPATH": {},
        "SKIN_PCA_SHAPES_FPATH": {},
        "TONGUE_PCA_COEFFS_FPATH": {},
        "TONGUE_PCA_SHAPES_FPATH": {},
        "DATA_INFO_FPATH": {},
        "SHOT_LIST_FPATH": {},
        # Dataset sampling. Channels: skin_coeffs, tongue_coeffs, jaw, eye, skin_pose, tongue_pose.
        "TARGET_CHANNELS": ["skin_coeffs", "tongue_coeffs", "jaw", "eye"],
        # Integer multiples of CACHE_FPS only.
        "TARGET_FPS": 30.0,
        "RESCALE_TARGET_CHANNEL_DATA": False,
        # "nva2f" or "w2v".
        "AUDIO_PREPROC_METHOD": "w2v",
        "AUDIO_PARAMS": {
            "buffer_len": 8320,
            "buffer_ofs": 8320 // 2,
            "samplerate": 16000,
        },
        "SEQ_LEN": 2,
        "SEQ_STRIDE": 1,
        "REMOVE_CLOSING_EYE": True,
        "EYE_DIST_THRESHOLD": 0.35,
        "PHONEME_FORCING_LANGS": ["en"],
        "PHONEME_PROB_TEMPERATURE": 1.0,
        # a2f-jax: phoneme posteriors from any external aligner (no hub models), docs/training.md / a2f_jax.train.phonemes.
        # {"<actor>": "<dir>"} holding <dir>/<lang>/<audio stem>.npy, float32 [T100, P] probabilities at 100 fps.
        # Empty: phoneme supervision is off.
        "PHONEME_POSTERIORS_ROOT": {},
        # {"<lang>": ["[SIL]", ...]}: class names of each language's posteriors (P = len; "[SIL]" required).
        "PHONEME_VOCAB": {},
        # (actor, shot, (first_frame, last_frame), speaker, lang, audio_fpath_rel, audio_offset)
        "CLIPS": [],
        # Keys: "timeshift" (fraction of a frame), "pitch_shift" (audiomentations.PitchShift kwargs).
        "AUGMENT": {"timeshift": 1.0},
        # (actor, (source_shot, source_frame), muted_shot_len, emotion): silent audio over a still frame.
        "AUG_MUTED_SHOTS": [],
        "AUG_MUTED_SKIN_IS_NEUTRAL_FOR_NEUTRAL_EMO": True,
        "AUG_MUTED_TONGUE_IS_NEUTRAL": False,
        # None, "gauss" or "mic".
        "AUG_MUTED_AUDIO_NOISE_TYPE": "mic",
        "AUG_MUTED_AUDIO_NOISE_SCALE": 0.1,
        "AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE": (0.0, 1.0),
        # Network.
        "NETWORK_NAME": "conv_w2v_autocorr",
        "NETWORK_HYPER_PARAMS": {
            "use_w2v_features": True,
            "use_autocorr_features": True,
            "w2v_freeze": True,
            "w2v_num_layers": 1,
            "autocorr_params": {
                "num_autocorr": 32,
                "num_windows": 25,
                "win_len": 640,
                "win_stride": 320,
                "preemph": 0.0,
                "remove_dc": True,
                "win_func": "hanning",
            },
            "implicit_emotion_len": 16,
            "explicit_emo_emb_len": 8,
        },
        "EMO_INIT_SIGMA": 0.01,
        "PRETRAINED_NET_FPATH": None,
        # Optimisation.
        "BATCH_SIZE": 32,
        "NUM_EPOCHS": 50,
        "LEARNING_RATE": 0.001 * 0.2,
        "EMO_LR_MULT": 1.0,
        "LR_STEP_GAMMA": 0.994,
        # Loss weights; an alpha of None switches that loss off.
        "LOSS_MSE_ALPHA": 1.0,
        "LOSS_MOTION_ALPHA": 10.0,
        "LOSS_EMO_REG_ALPHA": 1.0,
        "LOSS_LIP_DIST_ALPHA": 100.0,
        "LOSS_LIP_DIST_EXP": 1.0,
        "LOSS_LIP_DIST_EMO_WEIGHTS": None,
        "LOSS_LIP_SIZE_ALPHA": None,
        "LOSS_LIP_SIZE_EMO_WEIGHTS": None,
        "LOSS_VOL_STAB_REG_ALPHA": 1e2,
        "LOSS_VOL_STAB_REG_EXP": 5000.0,
        "LOSS_PHONEME_ALPHA": 0.1,
        "LOSS_PHONEME_SIL_WEIGHT": 1.0,
        "LOSS_PHONEME_MOTION_ALPHA": 0.05,
        # Outputs.
        "TRAIN_OUTPUT_ROOT": "$A2F_WORKSPACE_ROOT/output_train",
        "FINAL_DEPLOY_ROOT": "$A2F_WORKSPACE_ROOT/output_deploy",
        "TORCH_CACHE_ROOT": "$A2F_WORKSPACE_ROOT/torch_cache",
        # Emotions: the one mapped to the all-zeros vector (None: none is), and the default one.
        "SHOT_EMOTION_NAME_FOR_ALL_ZEROS": "neutral",
        "DEFAULT_SHOT_EMOTION_NAME": "neutral",
        "COMPACTIFY_IMPLICIT_EMO_DB": False,
        "LOG_PERIOD": 50,
        "REPRODUCIBLE": True,
        "RNG_SEED_TORCH": 42,
        "RNG_SEED_DATASET": 43,
        "AUDIO_DATA_CACHING": True,
        "PHONEME_DATA_CACHING": True,
        "TARGET_DATA_CACHING": True,
        "TARGET_OBJECTS_TO_CUDA": True,
        **extra_train_keys("$A2F_WORKSPACE_ROOT/pretrained/wav2vec2-base"),
    }


def extra_train_keys(encoder_snapshot: str) -> dict:
    """Keys a2f-jax adds to both train bases (docs/DEVELOPING.md, "Config keys beyond the original")."""
    return {
        # Local Hugging Face snapshot folder (config.json + model.safetensors).
        "AUDIO_ENCODER_SNAPSHOT": encoder_snapshot,
        "AUDIO_ENCODER_RANDOM_INIT": False,
        "AUDIO_ENCODER_CONFIG_OVERRIDES": {},
        # Held-out clips (CLIPS format), excluded from training.
        "VALIDATION_CLIPS": [],
        "VALIDATION_PERIOD": 500,
        "CHECKPOINT_PERIOD": 1000,
        "MAX_CHECKPOINTS_TO_KEEP": 3,
        # None: NUM_EPOCHS decides when training stops.
        "MAX_TRAIN_STEPS": None,
        # "float32", or "bfloat16": mixed precision (encoder, convs, dense layers and GRU in bf16; params,
        # optimizer state, diffusion schedule, losses and norm statistics float32). Inference runs float32.
        "COMPUTE_DTYPE": "float32",
    }
