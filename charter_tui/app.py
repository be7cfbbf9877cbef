"""The Textual app: five live screens over one `DataSource`, with the daemon embedded.

Data flow (one direction, as Harlequin and memray do it):
  daemon tasks --publish--> Bus --(BusSource)--> pump worker --apply--> DaemonState
  refresh timer (every REFRESH_S) --> the *active* screen's refresh_view(changed kinds)
                                  --> the Instances screen's, shown or not (see _refresh_tick)
Collectors never touch widgets; the pump only updates plain data and marks what changed, so a
burst of samples from 100 targets costs one redraw per tick (latest value wins). Screens other
than Instances cost nothing while hidden and do not redraw under a dialog (confirm, help);
Instances, the home screen, keeps drawing while covered so that coming back to it is one frame.
Commands (approve, reject, ...) go back through `DataSource.send_command`, which in-process
publishes on the bus; `tui --connect` swaps in an MQTT-backed source and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar, Protocol

from textual import events
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen

from charter_tui.datasource import DataSource, ReadOnlyError
from charter_tui.fleet import Fleet
from charter_tui.idle_gc import IdleCollector
from charter_tui.screens.agents import AgentsScreen
from charter_tui.screens.base import ALL, ViewScreen
from charter_tui.screens.bottlenecks import BottlenecksScreen
from charter_tui.screens.cache import CacheScreen
from charter_tui.screens.help import HelpScreen, binding_rows
from charter_tui.screens.instance_detail import InstanceDetailScreen
from charter_tui.screens.instances import InstancesScreen
from charter_tui.screens.rollouts import MUTATING_ACTIONS, RolloutsScreen
from charter_tui.screens.confirm import ConfirmScreen
from charter_tui.redraw import RedrawSchedule
from charter_tui.state import DaemonState
from charter_tui.widgets.topbar import SCREENS
from daemon.auth import local_identity
from daemon.bus import Event
from daemon.contract import RESULT_TOPIC, CommandResult
from daemon.config import LoadedConfig
from daemon.redaction import redact_url
from daemon.errors import shown
from executor.demo_traffic import TrafficStatus

log = logging.getLogger(__name__)

# The rollout manager's replies to commands (ok, or why it refused).
REFRESH_S = 0.25  # at most 4 redraws a second: live enough to read, cheap over SSH
CLOCK_S = 1.0  # ages ("4s ago") move even when no event arrives
GC_CHECK_S = 1.0


class CharterApp(App[None]):
    TITLE = "charter-tui"
    CSS_PATH = "charter.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    MODES: ClassVar[dict[str, str | Callable[[], Screen]]] = {  # type: ignore[assignment]
        "instances": InstancesScreen,
        "agents": AgentsScreen,
        "cache": CacheScreen,
        "bottlenecks": BottlenecksScreen,
        "rollouts": RolloutsScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"show('{mode}')", label, id=f"screen.{mode}", show=False)
            for mode, key, label in SCREENS
        ),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("colon", "command_palette", "Commands", id="palette", key_display=":"),
        Binding("q", "quit", "Quit", id="quit"),
        # Only attached to several daemons (`tui --connect`): which one Agents, Cache, Bottlenecks and Rollouts show.
        Binding("d", "next_daemon", "Next daemon", id="daemon.next"),
        # Only with demo traffic (`charter-tui demo`); one of the two shows, as check_action says.
        Binding("t", "pause_traffic", "Pause traffic", id="traffic.pause"),
        Binding("t", "resume_traffic", "Send traffic", id="traffic.resume"),
    ]
    # The help screen lists these classes' bindings, in this order.
    HELP_SCOPES: ClassVar[tuple[tuple[str, type], ...]] = (
        ("global", ViewScreen),
        ("instances", InstancesScreen),
        ("instance detail", InstanceDetailScreen),
        ("rollouts", RolloutsScreen),
        ("confirm dialog", ConfirmScreen),
    )

    def __init__(
        self,
        loaded: LoadedConfig,
        source: DataSource,
        *,
        daemon: Runnable | None = None,
        traffic: TrafficControl | None = None,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`source` is where everything shown comes from; `daemon`, when given, is run by the app on its
        own event loop (the embedded daemon), and so is `traffic` (the demo's synthetic requests, which
        `t` pauses). All are built by the composition root, charter_tui/compose.py."""
        super().__init__()
        self.loaded = loaded
        self.readonly = readonly
        self.clock = clock
        self.daemon = daemon
        self.traffic = traffic
        self.fleet = Fleet()
        self.source = source
        self.source.readonly = readonly
        for event in source.placeholders():
            self.fleet.apply(event)
        self.watch_paths = list(loaded.config.watch.paths)
        self.keymap = dict(loaded.config.keymap.bindings)
        # (daemon, rollout id) -> (action, when): a command sent and not answered yet. The daemon is part of the key:
        # two daemons of a fleet each have a rollout 1.
        self.sent_commands: dict[tuple[str | None, int], tuple[str, float]] = {}
        self._requests: dict[
            str, tuple[str | None, int | None, str]
        ] = {}  # request id -> (daemon, rollout, action)
        # What changed since the active screen drew (paused while a dialog covers it) ...
        self._active = RedrawSchedule()
        # ... and since the Instances screen drew. Instances, the home screen, is kept drawn even
        # while another screen covers it, at the same rate as when it shows: coming back to it
        # (`1`, `esc` from the detail or help) is then one frame, not a redraw of 100 live rows.
        self._home = RedrawSchedule()
        self._stop = asyncio.Event()
        self._switch_drawn = False  # see action_show
        self.idle_gc = IdleCollector()
        self.snapshot_loaded = asyncio.Event()

    @property
    def state(self) -> DaemonState:
        """The selected daemon's state (the only one in-process): what the per-daemon screens show."""
        return self.fleet.current

    # --- start and stop ------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        self.sub_title = "read-only" if self.readonly else redact_url(self.loaded.database_url)
        if self.daemon is not None:
            self.run_worker(self.daemon.run(self._stop), name="daemon", group="daemon", exit_on_error=False)
        self.run_worker(self._pump(), name="pump", group="pump", exit_on_error=False)
        if self.traffic is not None:
            self.run_worker(
                self._run_traffic(self.traffic), name="traffic", group="traffic", exit_on_error=False
            )
        self.set_interval(REFRESH_S, self._refresh_tick, name="refresh")
        self.set_interval(CLOCK_S, self._tick, name="clock")
        self.switch_mode("instances")
        if self.traffic is not None:  # once the first screen, which shows toasts, is up
            self.call_after_refresh(self.notify, self.traffic.status.describe(), title="demo", timeout=12)
        # Full GC collections wait for a pause in typing (see idle_gc.py).
        self.idle_gc.start()
        self.set_interval(GC_CHECK_S, self.idle_gc.tick, name="gc")

    def on_unmount(self) -> None:
        self.idle_gc.stop()  # however the app ends (tests run many apps in one process)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.idle_gc.saw_input()
        await super().on_event(event)

    async def _pump(self) -> None:
        """Fill the state: the start-up snapshot first, then live events for as long as we run."""
        for event in await self.source.snapshot():
            self._apply(event)
        self.snapshot_loaded.set()
        async for event in self.source.events():
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if event.topic == RESULT_TOPIC:
            self._command_result(event.payload)
            return
        try:
            kind = self.fleet.apply(event)
        except Exception:  # one malformed payload must not stop the live view
            log.exception("could not apply %s", event.topic)
            return
        if kind is not None:
            self._mark(kind)

    def _mark(self, kind: str) -> None:
        self._active.mark(kind)
        self._home.mark(kind)

    def _tick(self) -> None:
        self._mark("clock")

    def home_screen(self) -> InstancesScreen | None:
        """The Instances screen, once built (the base of its mode's stack)."""
        try:
            base = self.get_screen_stack("instances")[0]
        except (KeyError, IndexError):
            return None
        return base if isinstance(base, InstancesScreen) and base.is_mounted else None

    def _refresh_tick(self) -> None:
        """Redraw what changed since the last tick: the Instances screen whether it shows or not,
        and any other active screen unless a dialog covers it (it redraws fully on resume)."""
        now = time.monotonic()
        try:
            screen = self.screen
        except ScreenStackError:
            # Between switch_mode's leaving one mode and mounting the first screen of a mode not
            # visited before (and during shutdown) the current stack is empty: nothing to draw on.
            return
        home = self.home_screen()
        if home is not None:
            changed = self._home.take(now)
            if changed:
                if home is screen:
                    home.refresh_view(changed)
                else:
                    home.draw_hidden(changed)
        if screen is home or isinstance(screen, ModalScreen):
            return
        changed = self._active.take(now)
        if changed and isinstance(screen, ViewScreen) and screen.is_mounted:
            screen.refresh_view(changed)

    def home_is_current(self, screen: Screen) -> bool:
        """`screen` is the Instances screen and drawing it while covered kept it as current as a
        visible screen is (only samples and the clock wait, for the once-a-second redraw)."""
        return screen is self.home_screen() and self._home.only_routine_pending

    def flush_now(self) -> None:
        """Redraw with everything (tests and benchmarks call this to settle)."""
        for schedule in (self._active, self._home):
            schedule.dirty |= set(ALL)
            schedule.reset()
        self._refresh_tick()

    async def action_quit(self) -> None:
        log.info("quit: stopping%s", " the embedded daemon" if self.daemon is not None else "")
        self._stop.set()
        self.source.close()
        if self.daemon is not None:
            await self.workers.wait_for_complete([w for w in self.workers if w.group == "daemon"])
        log.info("quit: the app exits")
        self.exit()

    # --- navigation -------------------------------------------------------------------------------
    def action_show(self, mode: str) -> None:
        if self.current_mode == mode:
            return
        try:
            stack = self.get_screen_stack(mode)
        except KeyError:  # not built yet: the first visit composes it
            stack = []
        target = stack[-1] if stack else None
        if isinstance(target, ViewScreen) and target.is_mounted:
            # Draw the screen while it is still hidden (Instances is drawn already unless more
            # than samples changed), then switch without Textual's 50 ms update delay (which
            # masks a half-drawn screen; this one is drawn), so the first frame after the key
            # shows the new screen with current data.
            if not self.home_is_current(target):
                target.predraw()
            # The terminal shows another screen, so the first frame of this one must repaint
            # all of it: Textual would send only the regions that changed on this screen since
            # it was last shown (its compositor tracks its own frames), leaving the old screen's
            # lines everywhere else until the resume repaint. Marking the screen itself dirty
            # makes the layout pass inside switch_mode render a full frame (Screen internals,
            # textual pinned; tests/tui/test_responsiveness.py checks the frame is full).
            target.refresh()
            target._dirty_widgets.add(target)
            self._switch_drawn = True
            try:
                self.switch_mode(mode)
            finally:
                self._switch_drawn = False
        else:
            self.switch_mode(mode)

    # --- the fleet ----------------------------------------------------------------------------------
    def action_next_daemon(self) -> None:
        if self.select_daemon(self.fleet.select_next()):
            self.notify(f"showing daemon {self.fleet.current_id}", timeout=3)

    def select_daemon(self, daemon: str | None) -> bool:
        """Show `daemon` on the per-daemon screens; True if that changed what they show."""
        if daemon is None:
            return False
        before = self.fleet.current_id
        self.fleet.select(daemon)
        if self.fleet.current_id == before:
            return False
        for schedule in (self._active, self._home):
            schedule.dirty |= set(ALL)
        self.refresh_bindings()
        return True

    # --- demo traffic ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_daemon":
            return self.fleet.is_fleet
        if action == "pause_traffic":
            return self.traffic is not None and not self.traffic.paused
        if action == "resume_traffic":
            return self.traffic is not None and self.traffic.paused
        return True

    def action_pause_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.pause()
            self.notify("Demo traffic paused: nothing more is sent (t sends again).", timeout=5)
            self._after_traffic_toggle()

    def action_resume_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.resume()
            self.notify("Demo traffic on again.", timeout=5)
            self._after_traffic_toggle()

    async def _run_traffic(self, traffic: TrafficControl) -> None:
        try:
            await traffic.run(self._stop)
        except Exception as exc:  # the demo's traffic failing must not take the dashboard with it
            log.exception("demo traffic crashed")
            traffic.status.state, traffic.status.last_error = "failed", shown(exc)
        if traffic.status.state == "failed":
            self.notify(f"Demo traffic stopped: {traffic.status.last_error}", severity="error", timeout=15)
            self._after_traffic_toggle()

    def traffic_badge(self, width: int) -> str:
        """The top bar's word on the demo traffic: what it is, and at 120 columns and more, how it goes."""
        if self.traffic is None:
            return ""
        status = self.traffic.status
        if width < 120:
            return "DEMO" if status.state != "paused" else "DEMO paused"
        if status.state == "failed":
            return "DEMO traffic stopped"
        if status.state == "paused":
            return f"DEMO traffic paused · {status.runs} runs"
        errors = f" · {status.failed_runs} failed" if status.failed_runs else ""
        return f"DEMO traffic · {status.runs} runs{errors}"

    def _after_traffic_toggle(self) -> None:
        self.refresh_bindings()
        self._mark("clock")  # the top bar's badge

    def delay_update(self, delay: float = 0.05) -> None:
        if self._switch_drawn:
            return
        super().delay_update(delay)

    def action_help(self) -> None:
        readonly_ids = {f"rollouts.{a}" for a in MUTATING_ACTIONS} if self.readonly else set()
        app_bindings = [
            b
            for b in _bindings(self.BINDINGS)
            if (self.traffic is not None or not (b.id or "").startswith("traffic."))
            and (self.fleet.is_fleet or not (b.id or "").startswith("daemon."))
        ]
        scopes: list[tuple[str, Iterable[Binding]]] = [("app", app_bindings)]
        scopes += [(name, _bindings(cls.__dict__.get("BINDINGS", []))) for name, cls in self.HELP_SCOPES]
        rows = binding_rows(scopes, self.keymap, readonly_ids)
        self.push_screen(self._reusable("help", lambda: HelpScreen(rows)))

    def show_instance_detail(self, name: str) -> None:
        screen = self._reusable("detail", lambda: InstanceDetailScreen(name))
        assert isinstance(screen, InstanceDetailScreen)
        screen.show_target(name)
        if screen.is_mounted:
            screen.predraw()  # so the first frame shows this target, not the one shown last time
        self.push_screen(screen)

    def _reusable(self, name: str, build: Callable[[], Screen]) -> Screen:
        """The installed screen called `name`, built on first use and kept after it is closed.

        Opening a screen that is already composed and styled costs one redraw; building it
        again each time cost several (and Textual's per-screen caches grew with every build).
        A screen can be on one stack only: if it is open on another mode's stack, a fresh
        one is built for this time.
        """
        if not self.is_screen_installed(name):
            self.install_screen(build(), name)
        screen = self.get_screen(name)
        if any(screen in self.get_screen_stack(mode) for mode in self._built_modes()):
            return build()
        return screen

    def _built_modes(self) -> list[str]:
        built = []
        for mode in self.MODES:
            try:
                self.get_screen_stack(mode)
            except KeyError:
                continue
            built.append(mode)
        return built

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for mode, key, label in SCREENS:
            yield SystemCommand(
                f"{label} screen", f"show the {label} screen (key {key})", lambda m=mode: self.action_show(m)
            )
        yield SystemCommand("Help: keys", "every key binding and its id", self.action_help)
        if isinstance(screen, ViewScreen):
            yield SystemCommand("Filter", "filter the rows of this screen (/)", screen.action_filter)
        if isinstance(screen, RolloutsScreen) and not self.readonly:
            for action, label in (
                ("approve", "Approve"),
                ("reject", "Reject"),
                ("rollback", "Roll back"),
                ("pause", "Pause/resume"),
            ):
                if screen.check_action(action, ()):
                    yield SystemCommand(
                        f"{label} the selected rollout",
                        "asks y/n first" if action != "pause" else "",
                        getattr(screen, f"action_{action}"),
                    )
        yield from super().get_system_commands(screen)

    # --- commands -------------------------------------------------------------------------------
    def send_rollout_command(self, rollout_id: int, action: str) -> None:
        self.run_worker(self._send(rollout_id, action), group="commands", exit_on_error=False)

    async def _send(self, rollout_id: int, action: str) -> None:
        daemon = self.fleet.current_id  # the daemon whose rollouts are on screen
        try:
            request_id = await self.source.send_command(
                rollout_id, action, actor=local_identity(), comment="from charter-tui", daemon=daemon
            )
        except (ReadOnlyError, RuntimeError, ValueError) as exc:  # read-only, disconnected, bad action
            self.notify(str(exc), severity="error")
            return
        self._requests[request_id] = (daemon, rollout_id, action)
        self.sent_commands[(daemon, rollout_id)] = (action, self.clock())
        self.notify(f"{action} sent for rollout #{rollout_id}", timeout=4)
        self._mark("rollout")

    def propose_recommendation(self, recommendation_id: int) -> None:
        """Ask the rollout manager to turn a stored recommendation into a proposal (as `charter-tui rollouts
        propose --from-recommendation` does); it then waits for approval on the Rollouts screen."""
        self.run_worker(self._propose(recommendation_id), group="commands", exit_on_error=False)

    async def _propose(self, recommendation_id: int) -> None:
        try:
            request_id = await self.source.send_command(
                None,
                "propose",
                actor=local_identity(),
                comment="from charter-tui",
                recommendation_id=recommendation_id,
                daemon=self.fleet.current_id,
            )
        except (ReadOnlyError, RuntimeError, ValueError) as exc:
            self.notify(str(exc), severity="error")
            return
        self._requests[request_id] = (
            self.fleet.current_id,
            None,
            f"proposal of recommendation {recommendation_id}",
        )
        self.notify(
            f"recommendation {recommendation_id} sent for proposal; approve it on Rollouts (5)", timeout=6
        )

    def _command_result(self, payload: object) -> None:
        """The rollout manager's answer to a command: a refusal is shown (the state did not change)."""
        if isinstance(payload, dict):  # from MQTT, before decoding
            try:
                payload = CommandResult.model_validate(payload)
            except ValueError:
                return
        if not isinstance(payload, CommandResult):
            return
        sent = self._requests.pop(str(payload.request_id), None)
        if sent is None:
            return  # another client's command
        daemon, rollout_id, action = sent
        if not payload.ok:
            what = action if rollout_id is None else f"{action} of rollout #{rollout_id}"
            if rollout_id is not None:
                self.sent_commands.pop((daemon, rollout_id), None)
            self.notify(f"{what} refused: {shown(payload.error or '', 300)}", severity="error", timeout=8)
            self._mark("rollout")


class Runnable(Protocol):
    """The embedded daemon as the app sees it: something to run until `stop` is set."""

    def run(self, stop: asyncio.Event) -> Coroutine[Any, Any, None]: ...


class TrafficControl(Runnable, Protocol):
    """Synthetic traffic the app runs and the user can pause (the demo's: executor/demo_traffic.py)."""

    status: TrafficStatus

    @property
    def paused(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


def _bindings(items: Iterable[BindingType]) -> list[Binding]:
    out = []
    for b in items:
        if isinstance(b, Binding):
            out.append(b)
        else:
            out.append(Binding(*b))
    return out
