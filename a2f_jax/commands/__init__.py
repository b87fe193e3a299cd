"""Console entry points: one module per command, each with `main(argv=None) -> int` under `cli.main_guard`.

`pip install` puts them on the PATH (setup.py `console_scripts`: `a2f-train` runs `a2f_jax.commands.train:main`,
and so on); `scripts/<name>.py` are thin wrappers around the same functions. A command parses its arguments and
calls one library function (layer 9 of docs/DEVELOPING.md).
"""
