"""Serve a deploy bundle over the Audio2Face-3D NIM gRPC API, for Maya-ACE 1.x and other ACE clients.

    python scripts/serve.py --bundle BUNDLE_DIR [--host 127.0.0.1] [--port 52000] [--max-streams N] \
        [--identity NAME] [--fps 30] [--threads 1] [--idle-timeout 30]

Serves nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream (and grpc.health.v1 Check)
until Ctrl-C. Needs the [serve] extra: pip install -e ".[serve]".
"""

import sys

from a2f_jax.serve.cli import serve_main

if __name__ == "__main__":
    sys.exit(serve_main())
