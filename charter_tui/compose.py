"""The composition root: which daemon and which data source the TUI gets, decided in one place.

    app = embedded_app(loaded, readonly=args.readonly)          # `charter-tui`
    app = embedded_app(loaded, traffic=DemoTraffic(...))        # `charter-tui demo`
    app = remote_app(loaded, "mqtt://ops@broker:1883")          # `charter-tui tui --connect`

The app itself builds nothing: it is handed one `DataSource` (and, embedded, the daemon to run on its
event loop). A read-only TUI embeds a read-only daemon, so `--readonly` holds for every path, not only for
the keys the screens hide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from charter_tui.app import CharterApp, TrafficControl
from charter_tui.datasource import BusSource
from daemon.bus import Bus, Event
from daemon.config import LoadedConfig
from daemon.models import Instance
from daemon.views import History


def embedded_app(
    loaded: LoadedConfig,
    *,
    readonly: bool = False,
    traffic: TrafficControl | None = None,
    clock: Callable[[], float] = time.time,
) -> CharterApp:
    from daemon.service import DaemonService

    # Beside a `charter-tui daemon` that already acts on this database, the TUI's own daemon only watches.
    daemon = DaemonService(loaded, readonly=readonly or loaded.config.daemon.readonly, watch_if_taken=True)
    # Subscribed now, before the daemon starts, so its first events are not missed.
    source = BusSource(daemon.bus, daemon, readonly=readonly)
    return CharterApp(loaded, source, daemon=daemon, traffic=traffic, readonly=readonly, clock=clock)


class ConfiguredTargets:
    """Read views for an app whose daemon is not running: the configured targets, nothing stored."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.config = loaded.config

    def configured_instances(self) -> list[Instance]:
        from daemon.service import configured_instances

        return configured_instances(self.config)

    async def snapshot(self) -> list[Event]:
        return []

    async def history(self, instance: str, since: float, signals: Sequence[str]) -> History:
        return []


def pinned_app(
    loaded: LoadedConfig, *, readonly: bool = False, clock: Callable[[], float] = time.time
) -> CharterApp:
    """The app over a bus that nothing but the caller publishes on (tests, benchmarks): `app.source.bus`."""
    return CharterApp(
        loaded, BusSource(Bus(), ConfiguredTargets(loaded), readonly=readonly), readonly=readonly, clock=clock
    )


def remote_app(
    loaded: LoadedConfig, connect: str, *, daemons: tuple[str, ...] = (), readonly: bool = False
) -> CharterApp:
    """The TUI over remote daemons' MQTT bridges (every daemon on the broker, or `daemons`); commands are
    signed with `[auth.client]`, for the daemon they go to."""
    from charter_tui.commands.tui import connect_config
    from charter_tui.mqtt_source import MqttSource
    from daemon.auth import CommandSigner

    mqtt = connect_config(connect, loaded.config.mqtt)
    # Without [auth.client] the TUI only watches: the daemon would refuse an unsigned command anyway.
    source = MqttSource(
        mqtt, readonly=readonly, signer=CommandSigner.from_config(loaded.config.auth), daemons=daemons
    )
    return CharterApp(loaded, source, readonly=readonly)
