"""Print the resolved configs of a config directory as JSON.

    python scripts/print_config.py --config configs/example-regression --config.train.BATCH_SIZE=4
"""

import sys

from a2f_jax import cli


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    configs, _ = cli.parse(argv, description="Print the resolved configs (bases + config files + overrides) as JSON.")
    print(configs.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
