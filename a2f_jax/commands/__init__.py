"""Console entry points: one module per command, each with `main(argv=None) -> int` under `cli.main_guard`.

`pip install` puts them on the PATH (setup.py `console_scripts`: `a2f-train` runs `a2f_jax.commands.train:main`,
...); `scripts/<name>.py` are thin wrappers around the same functions. A command parses its arguments and calls one
library function (layer 9 of docs/DEVELOPING.md).
"""

# console script name -> "module:function"; setup.py installs exactly these (tests/test_cli.py checks both agree).
CONSOLE_SCRIPTS = {
    "a2f-preproc": "a2f_jax.commands.preproc:main",
    "a2f-train": "a2f_jax.commands.train:main",
    "a2f-deploy": "a2f_jax.commands.deploy:main",
    "a2f-infer": "a2f_jax.commands.infer:main",
    "a2f-evaluate": "a2f_jax.commands.evaluate:main",
    "a2f-check-dataset": "a2f_jax.commands.check_dataset:main",
    "a2f-check-bundle": "a2f_jax.commands.check_bundle:main",
    "a2f-print-config": "a2f_jax.commands.print_config:main",
    "a2f-solve-blendshapes": "a2f_jax.commands.solve_blendshapes:main",
    "a2f-demo": "a2f_jax.commands.demo:main",
    "a2f-bench": "a2f_jax.commands.bench:main",
    "a2f-device-check": "a2f_jax.commands.device_check:main",
    "a2f-serve": "a2f_jax.serve.cli:serve_main",
    "a2f-stream-client": "a2f_jax.serve.cli:client_main",
}
