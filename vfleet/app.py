"""The Textual console: one App over one Fleet.

The fleet's subscription is read by a task on the app's loop that only posts
messages (never touches widgets); every screen is fed from those messages.
Only this module and screens/, widgets/, messages import textual.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable
from pathlib import Path

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from textual.timer import Timer

from vfleet.core.audit import AuditLog
from vfleet.core.config import Config
from vfleet.core.engine import DriverFactory, Fleet, HostView, default_driver_factory
from vfleet.core.inventory import Inventory
from vfleet.core.models import DomainEvent, HostStatus
from vfleet.core.operations import Operations
from vfleet.core.sanitize import printable
from vfleet.messages import FleetEvents, FleetUpdated
from vfleet.screens.domain import DomainScreen
from vfleet.screens.fleet import FleetScreen
from vfleet.screens.host import HostScreen
from vfleet.widgets.live_table import after_keys
from vfleet.widgets.panes import HostsPane
from vfleet.widgets.screen_diff import lean_driver

HEALTH_TICK = 1.0  # seconds: re-read health so that STALE and data ages move on quiet hosts
# Keys first: live updates wait this long after a key, so the key's frame is not drawn
# behind a repaint of every changed row (a poll can touch each visible row)...
KEYS_FIRST = 0.2
# ...but never longer than this: the data on screen stays live while someone holds a key.
UPDATES_HELD_AT_MOST = 1.0
# Held views go in slices of about this long, the keys that came meanwhile between them: a
# second of a 10,000-domain fleet in one go would keep a key waiting for hundreds of ms. A key
# goes through the app's queue twice (to the table, then back up for its binding), so it may
# wait for two slices: their size follows the measured cost of a row (a loaded machine's too).
SLICE_SECONDS = 0.008
# A key takes this long at most through the queues (app, focused widget, back to the app for
# its binding) on a free loop: slices held past the cap still stand aside for it.
KEY_IN_FLIGHT = 0.02
# Python's full garbage collections walk every live object: 100-250 ms with 10,000 domains
# on screen, a key stuck behind each. They are taken here instead, in a pause in the typing
# (no key for GC_QUIET s), about every GC_EVERY s; someone typing without pause for
# GC_AT_LATEST s gets one anyway (only reference cycles wait: the rest is freed as it goes).
GC_EVERY = 30.0
GC_QUIET = 1.0
GC_AT_LATEST = 120.0
_NO_AUTO_FULL = 1 << 30  # gen-1 passes before an automatic full one: never


class VFleetApp(App[int]):
    CSS_PATH = Path(__file__).with_name("vfleet.tcss")
    TITLE = "vfleet"
    BINDINGS = [Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    def __init__(
        self,
        fleet: Fleet,
        *,
        audit: AuditLog | None = None,
        demo: bool = False,
        read_only: bool = False,
        start_fleet: bool = True,
        config: Config | None = None,
    ) -> None:
        super().__init__()
        self.config = config or Config()
        self.fleet = fleet
        fleet.keep_history()  # the sparklines; headless commands keep none
        self.operations = Operations(fleet, audit or AuditLog(), face="tui")
        self.demo = demo
        self.read_only = read_only
        self._start_fleet = start_fleet
        self._pump: asyncio.Task[None] | None = None
        self._stopped = False
        self._statuses: dict[str, HostStatus] = {}
        self._last_key = 0.0
        self._held: dict[str, HostView] = {}  # views waiting for a pause in the typing
        self._held_since: float | None = None
        self._release: Timer | None = None
        self._slicing = False  # a next slice of held views is on its way
        self._stood_aside = False  # the next slice waited for a key already
        self._row_cost = 50e-6  # seconds to apply one row, as measured (for the slices)
        self._gc_threshold = gc.get_threshold()
        self._last_full_gc = 0.0
        self.fleet_screen = FleetScreen(fleet, self.operations, demo=demo, read_only=read_only, config=self.config)
        # The config's key overrides, by the ids FleetScreen gives its bindings (Textual normalises "?" etc.).
        self.set_keymap(dict(self.config.keys))

    def get_driver_class(self) -> type[Driver]:
        # Only the cells that changed go to the terminal, like curses: a light stream over SSH.
        return lean_driver(super().get_driver_class())

    def on_resize(self, event: events.Resize) -> None:
        # The terminal may have reflowed or dropped what it showed: the next frame goes in full.
        diff = getattr(self._driver, "screen_diff", None)
        if diff is not None:
            diff.invalidate()

    async def on_mount(self) -> None:
        self._apply_config_theme()
        await self.push_screen(self.fleet_screen)
        self.theme_changed_signal.subscribe(self, lambda _theme: self.fleet_screen.apply_theme())
        if self.config.interval is not None:
            self.fleet.set_interval(self.config.interval)
        if self._start_fleet:
            self.fleet.on_event(self._on_fleet_event)
            await self.fleet.start()
            self._pump = asyncio.create_task(self._pump_views(), name="vfleet-views")
            self.set_interval(HEALTH_TICK, self._health_tick)
        # Everything built so far (widgets, styles, modules) lives as long as the app: keep it
        # out of the collector's full passes, which otherwise stall a frame for tens of ms.
        gc.freeze()
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(*self._gc_threshold[:2], _NO_AUTO_FULL)
        self._last_full_gc = time.monotonic()
        self.set_interval(GC_QUIET, self._collect_when_quiet)

    def _collect_when_quiet(self) -> None:
        now = time.monotonic()
        due = now - self._last_full_gc
        if due >= GC_AT_LATEST or (due >= GC_EVERY and now - self._last_key >= GC_QUIET):
            gc.collect()
            self._last_full_gc = time.monotonic()

    def _apply_config_theme(self) -> None:
        theme = self.config.theme
        if theme is None:
            return
        if theme in self.available_themes:
            self.theme = theme
            return
        known = " ".join(sorted(self.available_themes))
        message = f"{self.config.where('theme')}: no theme named {theme!r} (known: {known})"
        self.notify(printable(message), severity="error", markup=False, timeout=10)

    async def _pump_views(self) -> None:
        """Fleet subscription -> messages; the subscription already keeps only the latest view per host."""
        subscription = self.fleet.subscribe()
        try:
            async for batch in subscription:
                self.post_message(FleetUpdated({view.name: view for view in batch}))
        finally:
            subscription.close()

    def _on_fleet_event(self, event: DomainEvent) -> None:
        self.post_message(FleetEvents(event))

    def _health_tick(self) -> None:
        # A hung host publishes nothing; its STALE status and data age only show if we look.
        if not self.is_running:
            return
        views = self.fleet.views()
        self.fleet_screen.query_one(HostsPane).apply(views)
        changed = {v.name: v for v in views if self._statuses.get(v.name) is not v.health.status}
        if changed:
            self.post_message(FleetUpdated(changed))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self._last_key = time.monotonic()
        await super().on_event(event)

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        if not self.is_running:  # views still arrive while the screens are being torn down
            return
        self._held.update(message.views)  # a newer view of a host replaces a held one
        if self._held_since is None:
            self._held_since = time.monotonic()
        if not self._slicing:  # else the next slice takes them in turn
            self._release_held()

    def _release_held(self) -> None:
        """Apply the held views now, unless a key came just now (then shortly, within the cap)."""
        if not self._held or not self.is_running:
            return
        now = time.monotonic()
        wait = self._last_key + KEYS_FIRST - now
        held_for = now - (self._held_since or now)
        if wait > 0 and held_for + wait <= UPDATES_HELD_AT_MOST:
            if self._release is None:
                self._release = self.set_timer(wait, self._on_release_timer)
            return
        if self._release is not None:
            self._release.stop()
            self._release = None
        in_flight = self._last_key + KEY_IN_FLIGHT - now
        if in_flight > 0 and not self._stood_aside:  # past the cap, a key on its way: after it
            self._stood_aside = True  # once per slice: a fast key repeat must not starve the data
            self._next_slice(in_flight)
            return
        self._stood_aside = False
        batch: list[HostView] = []
        rows = 0
        limit = SLICE_SECONDS / self._row_cost
        while self._held and rows < limit:  # at least one host
            name = next(iter(self._held))
            batch.append(self._held.pop(name))
            rows += len(batch[-1].rows)
        if self._held:
            self._next_slice()
        else:
            self._held_since = None
        started = time.perf_counter()
        self.apply_views(batch)
        if rows:
            self._row_cost = 0.7 * self._row_cost + 0.3 * max((time.perf_counter() - started) / rows, 1e-6)

    def _next_slice(self, delay: float = 0.0) -> None:
        # One chain of slices at a time: two would run back to back, a key stuck behind both.
        self._slicing = True
        after_keys(self, self._continue_slices, delay)

    def _continue_slices(self) -> None:
        self._slicing = False
        self._release_held()

    def _on_release_timer(self) -> None:
        self._release = None
        if not self._slicing:
            self._release_held()

    def apply_views(self, views: Iterable[HostView]) -> None:
        batch = list(views)
        for view in batch:
            self._statuses[view.name] = view.health.status
        self.fleet_screen.apply_views(batch)
        # Views still arrive while the app closes, its screens already gone.
        screen = self.screen_stack[-1] if self.screen_stack else None
        if isinstance(screen, DomainScreen | HostScreen):
            for view in batch:
                if view.name == screen.host:
                    screen.host_updated(view)

    def on_fleet_events(self, message: FleetEvents) -> None:
        if self.is_running:
            self.fleet_screen.show_events()

    async def action_quit(self) -> None:
        await self.stop_fleet()
        self.exit(0)

    async def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_threshold)  # the process may go on (tests, an embedding program)
        await self.stop_fleet()

    async def stop_fleet(self) -> None:
        """Close every connection once, whichever way the app ends."""
        if self._stopped:
            return
        self._stopped = True
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        if self._start_fleet:
            await self.fleet.stop()


def run_tui(
    inventory: Inventory,
    *,
    demo: bool = False,
    read_only: bool = False,
    config: Config | None = None,
    driver_factory: DriverFactory | None = None,
) -> int:
    """Start the console on an inventory; returns the exit code. `driver_factory`: e.g. --source prometheus."""
    # The badge says the whole console is read-only; per-host read-only shows in the hosts pane.
    read_only = read_only or (bool(inventory.hosts) and all(h.read_only for h in inventory.hosts))
    fleet = Fleet(inventory.hosts, read_only=read_only, driver_factory=driver_factory or default_driver_factory)
    app = VFleetApp(fleet, demo=demo, read_only=read_only, config=config)
    return app.run() or 0
