"""Training on the synthetic dataset (diffusion), with a tiny random audio encoder:
    python scripts/train.py --config configs/synthetic-diffusion-min
Preprocess first (scripts/preproc.py); PREPROC_RUN_NAME_FULL "latest:synthetic-min" picks the newest
preprocessing run named "synthetic-min" (the full and -min datasets share the actor name).
Clip ranges are the frame counts of the dataset generated with seed 0.
"""


def get_config() -> dict:
    return {
        "RUN_NAME": "synthetic-diffusion-min",
        "RUN_INFO": "Built-in synthetic dataset",
        "NETWORK_TYPE": "diffusion",
        "PREPROC_RUN_NAME_FULL": {"synth": "latest:synthetic-min"},
        "CLIPS": [
            ("synth", "s01_neutral", (0, 165), "synth", "en", "s01_neutral.wav", 0),
            ("synth", "s02_neutral", (0, 196), "synth", "en", "s02_neutral.wav", 0),
            ("synth", "s03_neutral", (0, 99), "synth", "en", "s03_neutral.wav", 0),
            ("synth", "s05_joy", (0, 195), "synth", "en", "s05_joy.wav", 0),
            ("synth", "s06_joy", (0, 135), "synth", "en", "s06_joy.wav", 0),
            ("synth", "s07_joy", (0, 138), "synth", "en", "s07_joy.wav", 0),
            ("synth", "s08_joy", (0, 94), "synth", "en", "s08_joy.wav", 0),
            ("synth", "s09_anger", (0, 180), "synth", "en", "s09_anger.wav", 0),
            ("synth", "s10_anger", (0, 157), "synth", "en", "s10_anger.wav", 0),
            ("synth", "s11_anger", (0, 149), "synth", "en", "s11_anger.wav", 0),
            ("synth", "s13_sadness", (0, 140), "synth", "en", "s13_sadness.wav", 0),
            ("synth", "s14_sadness", (0, 158), "synth", "en", "s14_sadness.wav", 0),
            ("synth", "s15_sadness", (0, 156), "synth", "en", "s15_sadness.wav", 0),
            ("synth", "s16_sadness", (0, 164), "synth", "en", "s16_sadness.wav", 0),
            ("synth", "s17_neutral", (0, 182), "synth", "en", "s17_neutral.wav", 0),
            ("synth", "s18_neutral", (0, 132), "synth", "en", "s18_neutral.wav", 0),
            ("synth", "s19_neutral", (0, 197), "synth", "en", "s19_neutral.wav", 0),
            ("synth", "s20_neutral", (0, 106), "synth", "en", "s20_neutral.wav", 0),
            ("synth", "s21_neutral", (0, 182), "synth", "en", "s21_neutral.wav", 0),
        ],
        # Held out from training, evaluated every VALIDATION_PERIOD steps.
        "VALIDATION_CLIPS": [
            ("synth", "s04_neutral", (0, 196), "synth", "en", "s04_neutral.wav", 0),
            ("synth", "s12_anger", (0, 151), "synth", "en", "s12_anger.wav", 0),
            ("synth", "s22_neutral", (0, 138), "synth", "en", "s22_neutral.wav", 0),
        ],
        # A still frame taken in a pause of each emotion, with noise audio.
        "AUG_MUTED_SHOTS": [
            ("synth", ("s01_neutral", 100), 60, "neutral"),
            ("synth", ("s05_joy", 94), 60, "joy"),
            ("synth", ("s09_anger", 41), 60, "anger"),
            ("synth", ("s13_sadness", 78), 60, "sadness"),
        ],
        # No pretrained encoder: a tiny randomly initialised one with the base model's conv
        # kernels/strides (frame rate unchanged: 320 samples per feature).
        "AUDIO_ENCODER_RANDOM_INIT": True,
        "AUDIO_ENCODER_CONFIG_OVERRIDES": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "conv_dim": (32, 32, 32, 32, 32, 32, 32),
            # SpecAugment spans of 5 frames (HuBERT base: 10): the encoder sees only each subsegment's real
            # frames, and 2 spans of 10 would hide up to 80 % of a 0.5 s subsegment.
            "mask_time_length": 5,
        },
        # A small network for a CPU demo; hubert_feature_dim must equal the encoder's hidden size at 60 fps.
        "NETWORK_HYPER_PARAMS": {
            "feature_dim": 64,
            "gru_feature_dim": 64,
            "hubert_feature_dim": 64,
        },
        # Padded batches of 4 short subsegments (two compiled bucket programs) and one update per batch.
        "BATCH_SIZE": 4,
        "SUBSEGMENT_MIN_FRAME": 30,
        "SUBSEGMENT_MAX_FRAME": 120,
        "LENGTH_BUCKETS": [60, 120],
        "GRADIENT_ACCUMULATION_STEPS": 1,
        "LEARNING_RATE": 1e-3,
        "NUM_EPOCHS": 200,
        "MAX_TRAIN_STEPS": 1000,
        "VALIDATION_PERIOD": 250,
        "CHECKPOINT_PERIOD": 500,
        "LOSS_LIP_DIST_ALPHA": 1e-5,
    }
