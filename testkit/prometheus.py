"""A real Prometheus server (Debian's `prometheus` package) on a free loopback port, scraping given targets.

`scripts/build-prometheus-kit.sh` (part of `make testkit`) installs the package where it is missing; this
module only launches the binary with a config of its own and a throwaway TSDB, and stops it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from testkit.ports import StartupError, free_port, stop_process, wait_http_ok

BUILD_HINT = "run `make testkit` (or `scripts/build-prometheus-kit.sh`) to install it"


@dataclass
class PrometheusServer:
    url: str
    port: int
    log_path: Path


def scrape_config(targets: Sequence[str], interval_s: float) -> str:
    """A prometheus.yml scraping each URL's /metrics as job `charter`, its instance label host:port."""
    hosts = ", ".join(f"'{urlsplit(t).netloc}'" for t in targets)
    every = f"{round(interval_s * 1000)}ms"  # Prometheus durations take no fractions ("1.0s" is refused)
    return (
        f"global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\n"
        f"scrape_configs:\n  - job_name: charter\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{hosts}]\n"
    )


@contextmanager
def start_prometheus(
    targets: Sequence[str], *, interval_s: float = 1.0, startup_timeout_s: float = 60.0
) -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise StartupError(f"no `prometheus` binary on PATH; {BUILD_HINT}")
    work = Path(tempfile.mkdtemp(prefix="charter-prometheus-"))
    (work / "prometheus.yml").write_text(scrape_config(targets, interval_s))
    port = free_port()
    log_path = work / "prometheus.log"
    argv = [
        binary,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/-/ready", process, startup_timeout_s, log_path)
        yield PrometheusServer(url=url, port=port, log_path=log_path)
    finally:
        stop_process(process)
        shutil.rmtree(work, ignore_errors=True)
