"""Print the resolved configs of a config directory as JSON.

    a2f-print-config --config configs/example-regression --config.train.BATCH_SIZE=4
    (or python scripts/print_config.py ...)
"""

from a2f_jax import cli


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    configs, _ = cli.parse(argv, description="Print the resolved configs (bases + config files + overrides) as JSON.")
    print(configs.to_json())
    return 0
