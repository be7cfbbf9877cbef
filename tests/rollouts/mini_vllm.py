"""A small real HTTP server that answers the endpoints the vLLM relaunch actuator reads, for the
identity tests (tests/rollouts/test_vllm_identity.py), which need a server that starts in a second
and can run as `nobody` (the real vLLM kit sits under /root, mode 700, and takes a minute per launch).

Standard library only, so /usr/bin/python3 runs it as any user. It takes vLLM's flags (unknown ones are
ignored, as the test only needs them in its argv) and reports the two the tests change:
  /health      200
  /metrics     vllm:cache_config_info{enable_prefix_caching="True",...} and the running max_num_seqs
  /v1/models   {"data": [{"id": NAME, "max_model_len": N}]}
  /whoami      the port it listens on (which server answered, behind a blue-green front)
  /slow        the same, after 1.5 s (a request still running when the front switches)
With MINI_VLLM_FAIL set it exits at once with that reason, as a vLLM whose start fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default="mini")
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    args, _unknown = parser.parse_known_args()
    if os.environ.get("MINI_VLLM_FAIL"):  # a start that fails, as a real vLLM's does (blue-green tests)
        sys.exit(f"ValueError: {os.environ['MINI_VLLM_FAIL']}")

    metrics = (
        f'vllm:cache_config_info{{enable_prefix_caching="{args.enable_prefix_caching}",block_size="16"}} 1.0\n'
        f"mini_vllm_max_num_seqs {args.max_num_seqs}\n"
    ).encode()
    models = json.dumps(
        {"data": [{"id": args.served_model_name, "max_model_len": args.max_model_len}]}
    ).encode()

    whoami = str(args.port).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/slow":
                time.sleep(1.5)
                self.path = "/whoami"
            body = {"/health": b"", "/metrics": metrics, "/v1/models": models, "/whoami": whoami}.get(
                self.path
            )
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
