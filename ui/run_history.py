"""This session's runs: every Start adds one, earlier runs stay, within a memory budget.

The current run (``st.session_state[ui.state.RUN]``) stays a live ``TrainingRun`` so the
other pages keep working. A run that is no longer current and has stopped training is
frozen into an ``nn_core.run_record.RunRecord`` (settings, per-batch and per-epoch
history, final metrics and a copy of the network) and its ``TrainingRun`` is let go.

Budget: records are kept within ``history_budget(limits)`` bytes. Over it, the oldest
finished records drop their per-batch history first, and a notice says which ones did.
A record is never removed except by the user.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import streamlit as st

from nn_core.memory import mb
from nn_core.run_record import RunRecord, now_iso, record_from_trainer, status_of
from ui import hosting
from ui.limits import Limits

HISTORY = "run_history"  # session-state key of this session's RunHistory
VALUE_BYTES = 32  # a Python float in a list: the object (24) and its slot (8)
BUDGET_SHARE = 3  # the history may take a third of a session's memory cap
_entry_ids = itertools.count(1)


def history_budget(limits: Limits) -> int:
    """Bytes this session's kept runs may take (a share of ``DIGITLAB_MAX_SESSION_MB``)."""
    return limits.max_session_bytes // BUDGET_SHARE


def record_bytes(record: RunRecord) -> int:
    """Memory a record holds: its network's arrays and its history's values."""
    values = sum(len(v) for v in record.history.values())
    model = 0
    if record.model is not None:
        model = sum(p.nbytes for p in record.model.params)
    return model + values * VALUE_BYTES


@dataclass
class RunEntry:
    """One run of the history: live (``run``) while current, then frozen (``record``).

    Attributes
    ----------
    id : int
    name : str
    created : str
        ISO 8601 UTC time of the Start.
    settings : dict
        What the sidebar showed (data, training images, preset and ``TrainConfig``).
    run : ui.runner.TrainingRun or None
    record : RunRecord or None
    dropped : bool
        True when its per-batch history was dropped to stay within the budget.
    """

    id: int
    name: str
    created: str
    settings: dict
    run: object | None = None
    record: RunRecord | None = None
    dropped: bool = False

    @property
    def live(self) -> bool:
        return self.run is not None

    @property
    def status(self) -> str:
        """running, stopped, finished, diverged (or failed for an imported failed run)."""
        if self.run is not None:
            if self.run.active:
                return "running"
            return status_of(self.run.trainer)
        return self.record.status if self.record is not None else "stopped"

    def snapshot(self) -> RunRecord:
        """The run as a record (for a live run, as it is now)."""
        if self.record is not None and self.run is None:
            return replace(self.record, name=self.name)
        run = self.run
        record = record_from_trainer(
            run.trainer, run.dataset, name=self.name, created=self.created, origin="app"
        )
        record.data["training images"] = self.settings.get("training images")
        return record

    def nbytes(self) -> int:
        return 0 if self.record is None else record_bytes(self.record)


@dataclass
class RunHistory:
    """The runs of one session, oldest first, and what the budget dropped."""

    entries: list[RunEntry] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def add_live(self, run, settings: dict | None = None) -> RunEntry:
        """Append a run that was just made (the Start hook)."""
        n = next(_entry_ids)
        settings = dict(settings if settings is not None else getattr(run, "settings", {}))
        entry = RunEntry(n, f"run {n}", now_iso(), settings, run=run)
        self.entries.append(entry)
        return entry

    def add_record(
        self, record: RunRecord, settings: dict | None = None, name: str | None = None
    ) -> RunEntry:
        """Append a run that is already a record (imported, or from a sweep)."""
        n = next(_entry_ids)
        if settings is None:
            m = record.metrics
            images = (m.get("n_train") or 0) + (m.get("n_val") or 0) or "?"
            settings = {
                "data": record.data.get("name"),
                "training images": images,
                **record.config.to_dict(),
            }
        name = name or record.name or f"run {n}"
        entry = RunEntry(n, name, record.created or now_iso(), dict(settings))
        entry.record = record
        self.entries.append(entry)
        return entry

    def get(self, entry_id: int) -> RunEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def entry_of(self, run) -> RunEntry | None:
        return next((e for e in self.entries if e.run is run and run is not None), None)

    def freeze_idle(self, current=None) -> list[RunEntry]:
        """Turn live runs that are not ``current`` and not training into records."""
        frozen = []
        # A Start the full queue turned away trained nothing and is nobody's run.
        self.entries = [e for e in self.entries if not getattr(e.run, "turned_away", False)]
        for entry in self.entries:
            run = entry.run
            if run is None or run is current or run.active or run.disposed:
                continue
            entry.record = entry.snapshot()
            entry.run = None
            frozen.append(entry)
        return frozen

    def delete(self, entry_ids) -> int:
        """Remove these runs (never a live one that trains); the number removed."""
        ids = set(entry_ids)
        keep = [e for e in self.entries if e.id not in ids or (e.run is not None and e.run.active)]
        removed = len(self.entries) - len(keep)
        self.entries = keep
        return removed

    def nbytes(self) -> int:
        return sum(e.nbytes() for e in self.entries)

    def enforce_budget(self, budget: int) -> list[str]:
        """Drop the per-batch history of the oldest finished records until within ``budget``.

        Returns the names of the runs that lost it (also added to ``notices``). Records are
        never removed: when every droppable history is gone and the total is still over,
        a notice asks the user to download and delete runs.
        """
        dropped = []
        for entry in self.entries:
            if self.nbytes() <= budget:
                break
            record = entry.record
            if entry.run is not None or record is None or not record.has_batch_history():
                continue
            if record.status == "running":
                continue
            entry.record = record.without_batch_history()
            entry.dropped = True
            dropped.append(entry.name)
        if dropped:
            self.notices.append(
                f"To stay within this session's budget of {mb(budget)} for kept runs, the "
                f"per-batch curves of {', '.join(dropped)} were dropped (their per-epoch "
                "curves, metrics and networks are kept)."
            )
        if self.nbytes() > budget:
            self.notices.append(
                f"The kept runs take {mb(self.nbytes())}, over this session's budget of "
                f"{mb(budget)}: download the runs you need and delete some."
            )
        return dropped


def session_history() -> RunHistory:
    """This session's history (made on first use)."""
    ss = st.session_state
    if HISTORY not in ss:
        ss[HISTORY] = RunHistory()
    return ss[HISTORY]


def on_new_run(run, limits: Limits) -> None:
    """The Start hook (``ui.runner.new_run``): freeze the earlier runs, add this one."""
    history = session_history()
    history.freeze_idle(current=run)
    history.add_live(run)
    history.enforce_budget(history_budget(limits))
    # The server's memory ledger counts what the kept runs hold (the live one is "run").
    hosting.ledger().set(hosting.session_id(), "history", history.nbytes())
