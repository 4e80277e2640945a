"""Labels for sources, event types and outcome types on caseworker and resident pages.

`wording_from_config` is the one place those pages get their words from: the data dictionary's
labels of sources, event types and outcome types. A `Wording` is plain data, so `score` stores the
model's own wording beside the list (model_features.json) and journeys read it from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


@dataclass(frozen=True)
class Wording:
    """Source, event-type and outcome-type labels; unknown names fall back to the name in words."""

    sources: dict[str, str] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)  # "source/event_type" -> singular label
    outcomes: dict[str, str] = field(default_factory=dict)

    def source(self, source: str) -> str:
        """A lane label: the source's label, capitalised."""
        label = self.sources.get(source) or _words(source)
        return label[:1].upper() + label[1:]

    def event(self, source: str, event_type: str) -> str:
        """One event, singular, e.g. 'door replacement'."""
        return self.events.get(f"{source}/{event_type}") or _words(event_type)

    def outcome(self, outcome_type: str) -> str:
        """An outcome type in words, e.g. 'child protection plan'."""
        return self.outcomes.get(outcome_type) or _words(outcome_type)

    def as_record(self) -> dict[str, dict[str, str]]:
        """Plain JSON data."""
        return {"sources": dict(self.sources), "events": dict(self.events), "outcomes": dict(self.outcomes)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Wording:
        """From as_record()'s output."""
        return cls(dict(record.get("sources", {})), dict(record.get("events", {})), dict(record.get("outcomes", {})))


def wording_from_config(config: Any) -> Wording:
    """The labels of a ProjectConfig's data dictionary: every declared source, event type and outcome type."""
    from earlysignal.dictionary import dictionary_for

    dictionary = dictionary_for(config)
    sources = {name: spec.label for name, spec in dictionary.sources.items()}
    events = {f"{name}/{event_type}": spec.label
              for name, source in dictionary.sources.items() for event_type, spec in source.event_types.items()}
    outcomes = {name: dictionary.outcome_label(name) for name in dictionary.outcomes}
    return Wording(sources, events, outcomes)
