"""Labels for sources, event types and outcome types on caseworker and resident pages.

This is the one place those pages get their words from. Today the words come from the feature
spec (each family's `description` and source name, and the spec's event labels); when the data
dictionary YAML lands, `wording_from_config` reads it instead and no page changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from earlysignal.features.spec import event_labels


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


@dataclass(frozen=True)
class Wording:
    """Source, event-type and outcome-type labels; unknown names fall back to the name in words."""

    sources: dict[str, str] = field(default_factory=dict)

    def source(self, source: str) -> str:
        """A lane label, e.g. the family description 'police call-outs', capitalised."""
        label = self.sources.get(source) or _words(source)
        return label[:1].upper() + label[1:]

    def event(self, source: str, event_type: str) -> str:
        """One event, singular, e.g. 'door replacement'."""
        return event_labels(source, event_type)[1]

    def outcome(self, outcome_type: str) -> str:
        """An outcome type in words, e.g. 'child protection plan'."""
        return _words(outcome_type)


def wording_from_config(config: Any) -> Wording:
    """The labels of a ProjectConfig (or a config dict's `features` section): one per family source."""
    families = config.features.families if hasattr(config, "features") else config["features"]["families"]
    sources: dict[str, str] = {}
    for family in families:
        source = family.source if hasattr(family, "source") else family["source"]
        description = family.description if hasattr(family, "description") else family.get("description", "")
        sources.setdefault(source, description or _words(source))
    return Wording(sources)
