"""Modal screens: context help, the action menu and confirmations by tier."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from vfleet.core.models import Verb
from vfleet.core.operations import Target, Tier


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close")]

    def __init__(self, title: str, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self._title = title
        self._keys = keys

    def compose(self) -> ComposeResult:
        width = max((len(k) for k, _ in self._keys), default=4)
        lines = [f"{key.ljust(width)}  {description}" for key, description in self._keys]
        with Vertical(id="help", classes="dialog"):
            yield Label(f"{self._title}: keys", classes="dialog-title")
            yield Static("\n".join(lines), id="help-keys", markup=False)
            yield Label("escape closes", classes="dialog-hint")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class ActionMenu(ModalScreen[Verb | None]):
    """Only the verbs every target's host allows; the core still re-checks."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, verbs: Sequence[Verb], targets: Sequence[Target]) -> None:
        super().__init__()
        self._verbs = list(verbs)
        self._targets = targets

    def compose(self) -> ComposeResult:
        what = _describe(self._targets)
        with Vertical(id="action-menu", classes="dialog"):
            yield Label(f"Action on {what}", classes="dialog-title")
            yield OptionList(*(Option(v.value, id=v.value) for v in self._verbs), id="verbs")
            yield Label("enter runs, escape cancels", classes="dialog-hint")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Verb(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmYesNo(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape,enter", "answer(False)", "No")]

    def __init__(self, verb: Verb, targets: Sequence[Target]) -> None:
        super().__init__()
        self._question = f"{verb.value} {_describe(targets)}?"

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Label(self._question, classes="dialog-title")
            yield Label("y: yes   n/enter/escape: no", classes="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ConfirmTyped(ModalScreen[bool]):
    """Destructive verbs and bulk actions: type the domain name, or the number of targets."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, verb: Verb, targets: Sequence[Target]) -> None:
        super().__init__()
        self._verb = verb
        self._targets = targets
        self.expected = targets[0].domain if len(targets) == 1 else str(len(targets))

    def compose(self) -> ComposeResult:
        what = "the domain name" if len(self._targets) == 1 else "the number of domains"
        with Vertical(id="confirm", classes="dialog"):
            yield Label(f"{self._verb.value} {_describe(self._targets)}", classes="dialog-title")
            yield Label(f"Type {what} ({self.expected}) to confirm:", markup=False)
            yield Input(id="confirm-input")
            yield Label("", id="confirm-error", classes="error")
            yield Label("enter confirms, escape cancels", classes="dialog-hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.expected:
            self.dismiss(True)
        else:
            self.query_one("#confirm-error", Label).update(f"that is not {self.expected!r}")
            event.input.value = ""

    def action_cancel(self) -> None:
        self.dismiss(False)


def confirm_screen(tier: Tier, verb: Verb, targets: Sequence[Target]) -> ModalScreen[bool] | None:
    """The modal a tier asks for; None when no confirmation is needed."""
    if tier is Tier.NONE:
        return None
    if tier is Tier.YES_NO:
        return ConfirmYesNo(verb, targets)
    return ConfirmTyped(verb, targets)


def _describe(targets: Sequence[Target]) -> str:
    if len(targets) == 1:
        return f"{targets[0].domain} on {targets[0].host}"
    hosts = sorted({t.host for t in targets})
    return f"{len(targets)} domains on {len(hosts)} host{'s' if len(hosts) != 1 else ''}"
