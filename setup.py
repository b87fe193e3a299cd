from setuptools import find_packages, setup

setup(
    name="a2f-jax",
    version="0.1.0",
    description="JAX/Flax training framework for audio-driven 3D facial animation, "
    "compatible with NVIDIA's Audio2Face-3D Training Framework",
    packages=find_packages(include=["a2f_jax", "a2f_jax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10,<0.12",
        "flax>=0.12,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.11,<0.11.37",
        "ml-collections>=1.1,<2",
        "numpy>=2.0,<3",
        "scipy>=1.13,<2",
        "scikit-learn>=1.5,<2",
        "librosa>=0.11,<0.12",
        "soundfile>=0.12,<0.15",
        "onnx>=1.17,<2",
        "onnxruntime>=1.20,<2",
        "jax2onnx>=0.17,<0.18",
        "transformers>=5,<6",
        "safetensors>=0.4,<1",
        "tensorboardX>=2.6,<3",
        "matplotlib>=3.8,<4",
        "imageio>=2.34,<3",
        "imageio-ffmpeg>=0.5,<1",
        "tqdm>=4.66,<5",
    ],
    entry_points={
        # Each runs `main(argv=None) -> int` of a2f_jax/commands/<name>.py; scripts/<name>.py wrap the same function.
        "console_scripts": [
            "a2f-preproc=a2f_jax.commands.preproc:main",
            "a2f-train=a2f_jax.commands.train:main",
            "a2f-deploy=a2f_jax.commands.deploy:main",
            "a2f-infer=a2f_jax.commands.infer:main",
            "a2f-evaluate=a2f_jax.commands.evaluate:main",
            "a2f-check-dataset=a2f_jax.commands.check_dataset:main",
            "a2f-check-bundle=a2f_jax.commands.check_bundle:main",
            "a2f-print-config=a2f_jax.commands.print_config:main",
            "a2f-solve-blendshapes=a2f_jax.commands.solve_blendshapes:main",
            "a2f-demo=a2f_jax.commands.demo:main",
            "a2f-bench=a2f_jax.commands.bench:main",
            "a2f-device-check=a2f_jax.commands.device_check:main",
            "a2f-serve=a2f_jax.serve.cli:serve_main",
            "a2f-stream-client=a2f_jax.serve.cli:client_main",
        ],
    },
    extras_require={
        "test": ["pytest>=8"],
        # Accelerator builds of the same JAX: pick the one that matches the machine's driver (README).
        "cuda12": ["jax[cuda12]>=0.10,<0.12"],
        "cuda13": ["jax[cuda13]>=0.10,<0.12"],
        "tpu": ["jax[tpu]>=0.10,<0.12"],
        # Live serving over the Audio2Face-3D NIM gRPC API (a2f-serve): the public message packages need
        # grpcio <= 1.67.1 and their generated code >= 1.67.0.
        "serve": ["grpcio>=1.67.0,<=1.67.1", "nvidia-ace~=1.0", "nvidia-audio2face-3d~=1.3"],
    },
)
