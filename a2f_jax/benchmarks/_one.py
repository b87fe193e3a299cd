"""Run one benchmark in this process and print its result as the last stdout line (JSON)."""

import json
import sys

from a2f_jax.benchmarks import discover, peak_rss_mb

if __name__ == "__main__":
    name = sys.argv[1]
    quick = "--quick" in sys.argv[2:]
    result = discover()[name](quick)
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    print(json.dumps(result))
