"""Modal screens: context help, the action menu and the confirmation of a plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from vfleet.core.models import Verb
from vfleet.core.operations import Plan, Target, Tier
from vfleet.core.sanitize import display_width, pad, printable

HelpSection = tuple[str, Sequence[tuple[str, str]]]
WIDE_HELP = 160  # columns from which help shows its groups side by side (each as wide as at 80)
_KEY_WORDS = {"pageup": "pgup", "pagedown": "pgdn", "escape": "escape", "enter": "enter", "space": "space"}


def key_label(keys: str) -> str:
    """A binding's keys as people type them: `/`, `*`, `<`, `Z`, `space`, `ctrl+p` (not `slash`)."""
    labels = []
    for key in keys.split(","):
        modifiers, _, name = key.strip().rpartition("+")
        label = _KEY_WORDS.get(name) or format_key(name)
        labels.append(f"{modifiers}+{label}" if modifiers else label)
    return " ".join(labels)


class HelpScreen(ModalScreen[None]):
    """Every key and command of a screen, grouped by what they act on; full-size and scrollable."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close")]

    def __init__(
        self, title: str, keys: Sequence[tuple[str, str]] = (), *, sections: Sequence[HelpSection] = ()
    ) -> None:
        super().__init__()
        self._title = title
        self._sections = [*([("Keys", keys)] if keys else []), *sections]

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog fullsize"):
            yield Label(f"{self._title}: help", classes="dialog-title", markup=False)
            with VerticalScroll(id="help-body", classes="fullsize-body"):
                for index, (heading, lines) in enumerate(self._sections):
                    with Vertical(classes="help-group"):
                        yield Label(heading, classes="help-section", markup=False)
                        yield Static(_help_grid(lines), id=f"help-{index}", classes="help-lines")
            # outside the scrolled part: always on screen, however small the terminal
            yield Label("escape closes · up/down pgup/pgdn scroll", id="help-hint", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def on_resize(self, event: events.Resize) -> None:
        # Wide terminals get two columns of groups: more of the help on one page.
        self.query_one("#help-body").set_class(event.size.width >= WIDE_HELP, "-wide")

    @property
    def text(self) -> str:
        """Every heading and line, for tests and searching."""
        return "\n".join(
            f"{heading}\n" + "\n".join(f"{key}  {what}" for key, what in lines) for heading, lines in self._sections
        )

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


def _help_grid(lines: Sequence[tuple[str, str]]) -> Table:
    # A grid, not padded text: a long description wraps under itself, never under the keys.
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(ratio=1)
    for key, description in lines:
        grid.add_row(Text(key), Text(description))
    return grid


class ActionMenu(ModalScreen[Verb | None]):
    """Only the verbs the core's plan would send to at least one target; the core still re-checks."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        verbs: Sequence[Verb],
        targets: Sequence[Target],
        hidden: int = 0,
        *,
        unavailable: Mapping[Verb, str] | None = None,
    ) -> None:
        super().__init__()
        self._verbs = list(verbs)
        self._unavailable = dict(unavailable or {})  # shown greyed out, with why
        self._targets = targets
        self._hidden = hidden

    def compose(self) -> ComposeResult:
        with Vertical(id="action-menu", classes="dialog"):
            yield Label(f"Action on {describe(self._targets)}", classes="dialog-title", markup=False)
            if self._hidden:
                yield Label(hidden_note(self._hidden), classes="warning", markup=False)
            offered = [Option(menu_label(v), id=v.value) for v in self._verbs]
            greyed = [
                Option(Text(printable(f"{menu_label(v)}: {why}"), style="dim"), id=v.value, disabled=True)
                for v, why in self._unavailable.items()
            ]
            yield OptionList(*offered, *greyed, id="verbs")
            yield Label("enter runs, escape cancels", classes="dialog-hint")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Verb(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmPlan(ModalScreen[bool]):
    """The core's plan, target by target, and the confirmation its tier asks for.

    yes-no: `y` confirms; type-name: type the domain's name (one target) or the number
    of targets that will be sent to. Refused and no-op targets are listed with why.
    """

    BINDINGS = [Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.expected = printable(plan.expected_answer)  # what the operator can see, and so type

    def compose(self) -> ComposeResult:
        plan = self.plan
        verb = plan.verb.value
        sendable = plan.sendable
        with Vertical(id="confirm", classes="dialog"):
            yield Label(f"{verb} {describe([d.target for d in sendable])}?", classes="dialog-title", markup=False)
            yield Label(plan.summary(), id="confirm-summary", markup=False)
            if plan.hidden:
                yield Label(hidden_note(plan.hidden), id="confirm-hidden", classes="warning", markup=False)
            with VerticalScroll(id="confirm-targets"):
                yield Static("\n".join(_plan_lines(plan)), id="confirm-list", markup=False)
            if plan.tier is Tier.TYPE_NAME:
                what = "the domain name" if len(sendable) == 1 else "the number of domains"
                yield Label(f"Type {what} ({self.expected}) to confirm:", markup=False)
                yield Input(id="confirm-input")
                yield Label("", id="confirm-error", classes="error", markup=False)
                yield Label("enter confirms, escape cancels", classes="dialog-hint")
            else:
                yield Label("y: yes   n/enter/escape: no", classes="dialog-hint")

    def on_mount(self) -> None:
        if self.plan.tier is Tier.TYPE_NAME:
            self.query_one("#confirm-input", Input).focus()

    def on_key(self, event: events.Key) -> None:
        if self.plan.tier is Tier.TYPE_NAME:
            return
        if event.key == "y":
            event.stop()
            self.dismiss(True)
        elif event.key in ("n", "enter"):
            event.stop()
            self.dismiss(False)

    @on(Input.Submitted, "#confirm-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.expected:
            self.dismiss(True)
        else:
            self.query_one("#confirm-error", Label).update(f"that is not {self.expected!r}")
            event.input.value = ""

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def menu_label(verb: Verb) -> str:
    return "snapshot" if verb is Verb.SNAPSHOT_CREATE else verb.value


def _plan_lines(plan: Plan) -> list[str]:
    places = [printable(f"{d.target.host}/{d.target.domain}") for d in plan.decisions]
    width = max((display_width(p) for p in places), default=0)
    lines = []
    for d, place in zip(plan.decisions, places, strict=True):
        # refusals say why; a pre-flight check (migration) says what it found
        why = d.notes if d.dispatch else d.refused or d.noop or ""
        why = f"  {printable(why)}" if why else ""
        lines.append(f"{d.plan_word:<7}  {pad(place, width)}{why}")
    return lines


def hidden_note(hidden: int) -> str:
    rows = "row is" if hidden == 1 else "rows are"
    return f"{hidden} marked {rows} hidden by the filter: included"


def describe(targets: Sequence[Target]) -> str:
    if len(targets) == 1:
        return printable(f"{targets[0].domain} on {targets[0].host}")
    hosts = sorted({t.host for t in targets})
    return f"{len(targets)} domains on {len(hosts)} host{'s' if len(hosts) != 1 else ''}"
