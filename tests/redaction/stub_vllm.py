"""A stand-in for `vllm serve` that the vLLM relaunch actuator can stop and restart in a second.

    python stub_vllm.py --port N [--max-num-seqs K] [--api-key KEY]

It takes the flags the actuator edits, serves `/health`, `/v1/models` and the vLLM exposition committed
in tests/daemon/fixtures on `/metrics`, and answers `GET /env` with the HF_TOKEN it was started with,
so a test can check that a rollback relaunched it with the real token (not a redacted "***").
Real processes, real ports, real /proc: only the model is missing. SIGTERM stops it at once.
"""

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EXPOSITION = Path(__file__).resolve().parents[1] / "daemon" / "fixtures" / "vllm-0.32.0-cpu.prom"

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--max-num-seqs", type=int, default=8)
parser.add_argument("--api-key", default=None)
args, _unknown = parser.parse_known_args()
metrics = EXPOSITION.read_bytes()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/health":
            body, kind = b"", "text/plain"
        elif self.path == "/metrics":
            body, kind = metrics, "text/plain; version=0.0.4"
        elif self.path == "/v1/models":
            body = json.dumps({"data": [{"id": "stub", "max_model_len": 256}]}).encode()
            kind = "application/json"
        elif self.path == "/env":
            body = json.dumps(
                {"HF_TOKEN": os.environ.get("HF_TOKEN"), "max_num_seqs": args.max_num_seqs}
            ).encode()
            kind = "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass  # the daemon polls every second; nobody reads this log


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server.serve_forever()
