"""Write the JSON schemas of the daemon <-> UI contract to docs/contract/ (daemon/topics.py, daemon/http_api.py).

    .venv/bin/python scripts/contract_schemas.py          # regenerate
    .venv/bin/python scripts/contract_schemas.py --check  # exit 1 if the committed files are out of date

One file per payload model plus docs/contract/README.md, the topic table. Generated, never edited by hand:
tests/foundation/test_contract_schemas.py runs --check, so a model change without its schema fails the suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.bus import daemon_topic  # noqa: E402
from daemon.topics import EXTRA_SCHEMAS, TOPICS  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "contract"


def render() -> dict[str, str]:
    files: dict[str, str] = {}
    rows = []
    for spec in TOPICS:
        name = spec.model.__name__
        files[f"{name}.schema.json"] = (
            json.dumps(spec.model.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"
        )
        kept = "retained, QoS 1" if spec.retained else ("QoS 1" if spec.direction == "in" else "QoS 0")
        rows.append(
            f"| `{daemon_topic('<daemon-id>', spec.pattern)}` | {spec.direction} | {kept} | [`{name}`]({name}.schema.json) | {spec.when} |"
        )
    for name, model in EXTRA_SCHEMAS.items():
        files[f"{name}.schema.json"] = (
            json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"
        )
    files["README.md"] = "\n".join(
        [
            "# The daemon <-> UI contract",
            "",
            "Generated from `daemon/topics.py` by `scripts/contract_schemas.py`; do not edit by hand.",
            "Every daemon of a fleet publishes under its own id (`[daemon] id`, default the host name), so one broker",
            "carries many daemons; in-process the bus has the same topics without the id. On the broker the `charter/v1`",
            "prefix is `[mqtt] topic_prefix`. Payloads are JSON of the models below.",
            "Commands (`in`) must be signed envelopes (daemon/auth.py, docs/security.md), signed for the daemon's topic",
            "(`charter/v1/<daemon-id>/command/rollout/<action>`: valid for that daemon only); the command inside is a",
            "[`RolloutCommand`](RolloutCommand.schema.json), answered on `charter/v1/<daemon-id>/command_result/rollout`.",
            "Liveness: `charter/v1/<daemon-id>/daemon/online` is retained; the broker publishes the daemon's Last Will",
            "(`online: false`) when its connection dies without a goodbye.",
            "The same reads and signed commands over HTTP (`[http] port`): [`openapi.json`](openapi.json).",
            "",
            "State topics are retained by the broker: a UI that connects late receives the current state at once.",
            "",
            "| topic | direction | on the broker | payload | published when |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    files["openapi.json"] = json.dumps(openapi(), indent=2, sort_keys=True) + "\n"
    return files


def openapi() -> dict[str, object]:
    """The HTTP API's OpenAPI document, from the app itself (nothing is served or stored)."""
    from daemon.bus import Bus
    from daemon.config import Config
    from daemon.http_api import build_app
    from daemon.store import AsyncStore, Store

    store = AsyncStore(Store("sqlite://"))
    try:
        app = build_app(Config(), store, Bus(), verifier=None, on_refused=None, configured=lambda: [])
        return app.openapi()
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="generate docs/contract/ from daemon/topics.py")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    args = parser.parse_args()
    files = render()
    stale = [n for n, text in files.items() if not (OUT / n).is_file() or (OUT / n).read_text() != text]
    extra = sorted(p.name for p in OUT.glob("*") if p.name not in files) if OUT.is_dir() else []
    if args.check:
        for name in stale + extra:
            print(f"docs/contract/{name} is out of date: run scripts/contract_schemas.py", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in extra:
        (OUT / name).unlink()
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} files to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
