"""Stream a WAV to an A2FControllerService (scripts/serve.py or NVIDIA's NIM) and write the blendshape weights.

    python scripts/stream_client.py WAV --out weights.csv [--emotion NAME=W ...] [--host 127.0.0.1] [--port 52000] \
        [--chunk 0.1] [--fast]

Sends the audio as 16-bit mono PCM at the file's rate in --chunk-second messages, paced to real time unless
--fast; writes frame, time and one column per blendshape.
"""

import sys

from a2f_jax.serve.cli import client_main

if __name__ == "__main__":
    sys.exit(client_main())
