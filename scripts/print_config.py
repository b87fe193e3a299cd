"""Print the resolved configs of a config directory as JSON.

    python scripts/print_config.py --config configs/example-regression --config.train.BATCH_SIZE=4
"""

from a2f_jax import cli


def main() -> None:
    configs, _ = cli.parse(description="Print the resolved configs (bases + config files + overrides) as JSON.")
    print(configs.to_json())


if __name__ == "__main__":
    main()
