"""The differencing attack on a release: what a reader can work back about a withheld count.

A reader of release.json (or of the audit's group tables) knows the code that wrote it, so knows how
its tables add up: a test date's escalations are found plus missed, the dates sum to the total, the
groups of a characteristic to everyone evaluated and an intersection's to each attribute's groups, the
calibration bins to everyone (less the bins dropped), cluster-size bands to every cluster, the flagged
in every group to the places on the lists (k, published exactly), and a date's counts are the same in
each of the borough's releases. Every published count c rounded to r says the exact count is in
[c - r/2, c + r/2); a withheld count says it is 1 to min_cell - 1; a rate published beside its
rounded denominator gives its rounded numerator. This module writes all of that down as an integer
linear program and asks, for each withheld count, the smallest and largest values it can take
(scipy's HiGHS MILP). A withheld count is *worked back* when it is pinned to fewer than
min_cell - 1 values, i.e. more tightly than "1 to min_cell - 1", the protection the rule promises.

`attack_release(release)` (and `attack_releases` for several read together) returns every withheld
count with its bounds; `worked_back(release)` those the release gives away. `close_differencing` adds
complementary suppressions until nothing is worked back: `audit_fairness` runs it on its group tables,
`build_release` on the whole release, and `write_bundle` / `release-sign` refuse a release it still
succeeds on (docs/federation.md, "What a reader cannot work back"; docs/adr/0024).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from earlysignal.audit.groups import INTERSECTION_JOIN

# No bound (one-sided constraints and unbounded counts); HiGHS takes infinities as such.
_BIG = math.inf


@dataclass(frozen=True)
class Bound:
    """What the attack learnt about one withheld count: it lies in [low, high] (whole numbers).

    name: the unknown ('date 2025-01-01 escalations found'); where: the release path that withholds it.
    """

    name: str
    where: str
    low: int
    high: int
    min_cell: int
    # Which of the releases read together withheld it (their position, oldest first): names repeat across
    # releases (a date's number found under two models), so a count is known by (release, name).
    release: int = 0

    @property
    def worked_back(self) -> bool:
        """True when the count is provably small and pinned to fewer values than 1 to min_cell - 1."""
        return self.high <= self.min_cell - 1 and (self.high - self.low + 1) < self.min_cell - 1


@dataclass
class CountProgram:
    """Unknown exact counts, each in an interval, tied by linear equalities; solved for one count's range."""

    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)
    targets: list[tuple[int, str]] = field(default_factory=list)
    # The matrix form, built once per program (cleared by any change), and every whole solution found so far:
    # each is a feasible point, so a count it puts on the count's own bound needs no solve for that side.
    _compiled: tuple[Any, Any, int] | None = field(default=None, repr=False)
    _witnesses: list[np.ndarray] = field(default_factory=list, repr=False)

    def _changed(self) -> None:
        self._compiled = None
        self._witnesses = []

    def variable(self, name: str, low: float = 0, high: float = _BIG) -> int:
        """A new non-negative whole count in [low, high]; returns its index."""
        self._changed()
        self.names.append(name)
        self.low.append(max(0.0, float(low)))
        self.high.append(float(high))
        return len(self.names) - 1

    def narrow(self, index: int, low: float, high: float) -> None:
        """Intersect a count's interval with [low, high]."""
        self._changed()
        self.low[index] = max(self.low[index], float(low))
        self.high[index] = min(self.high[index], float(high))

    def relate(self, coefficients: dict[int, float], low: float, high: float | None = None) -> None:
        """low <= sum(coefficient * count) <= high (high = low for an equality)."""
        self._changed()
        self.rows.append((dict(coefficients), float(low), float(low if high is None else high)))

    def _compile(self) -> tuple[Any, Any, int]:
        from scipy.optimize import Bounds, LinearConstraint

        if self._compiled is None:
            size = len(self.names)
            matrix = np.zeros((len(self.rows), size))
            lows, highs = np.zeros(len(self.rows)), np.zeros(len(self.rows))
            for r, (coefficients, low, high) in enumerate(self.rows):
                for column, value in coefficients.items():
                    matrix[r, column] += value
                lows[r], highs[r] = low, high
            constraints = [LinearConstraint(matrix, lows, highs)] if self.rows else []
            self._compiled = (constraints, Bounds(np.asarray(self.low), np.asarray(self.high)), size)
        return self._compiled

    def range_of(self, index: int) -> tuple[int, int] | None:
        """The smallest and largest whole value the count can take; None when the program is infeasible.

        Each side is one MILP (HiGHS), unless a whole solution found for another count already puts this one on
        its own lower (or finite upper) bound, which proves that side: the range is the same, the solves fewer
        (reading many releases together, most withheld counts are shown 1 to min_cell - 1 by earlier solutions).
        """
        from scipy.optimize import milp

        constraints, bounds, size = self._compile()
        edges = (math.ceil(self.low[index] - 1e-9),
                 math.floor(self.high[index] + 1e-9) if math.isfinite(self.high[index]) else None)
        out = []
        for sign, edge in ((1.0, edges[0]), (-1.0, edges[1])):
            if edge is not None and any(int(w[index]) == edge for w in self._witnesses):
                out.append(edge)
                continue
            objective = np.zeros(size)
            objective[index] = sign
            result = milp(objective, constraints=constraints, bounds=bounds, integrality=np.ones(size))
            if not result.success:
                return None
            self._witnesses.append(np.round(result.x).astype(np.int64))
            out.append(int(round(result.x[index])))
        return out[0], out[1]


def _rounding_window(value: int, round_to: int) -> tuple[int, int]:
    """Whole counts that round (halves up) to `value`: [value - round_to/2, value + round_to/2)."""
    return math.ceil(value - round_to / 2), math.ceil(value + round_to / 2) - 1


def _rounded_numerator(rate: float | None, denominator: int | None, round_to: int) -> int | None:
    """The rounded count behind a rate published as rounded numerator / rounded denominator."""
    if rate is None or not denominator:
        return None
    value = rate * denominator
    return int(round(value)) if abs(value - round(value)) < 1e-6 else None


class _Release:
    """Builds the program for one release document."""

    def __init__(self, release: dict[str, Any], not_recorded_groups: Sequence[str],
                 program: CountProgram | None = None, shared: dict[tuple[str, ...], int] | None = None):
        self.doc = release
        small = release.get("small_numbers") or {}
        self.min_cell = int(small.get("min_cell", 10))
        self.round_to = int(small.get("round_to", 5))
        self.program = program if program is not None else CountProgram()
        # The same date's counts in two releases of one borough are the same unknowns (residents and
        # escalations by date; the number found by date, model and k).
        self.shared = shared if shared is not None else {}
        self.not_recorded = set(not_recorded_groups)
        self.big = 2 * _largest_whole_number(release) + 1000

    def _date_variable(self, key: tuple[str, ...], name: str, high: float = _BIG) -> int:
        borough = str(self.doc.get("borough") or "")
        full = (borough, *key)
        if full not in self.shared:
            self.shared[full] = self.program.variable(name, 0, high)
        return self.shared[full]

    # A published count (rounded) or a withheld one (small) narrows an unknown.
    def published(self, index: int, value: Any, where: str, *, withheld_means_small: bool = True) -> None:
        if value is None:
            if withheld_means_small:
                self.program.narrow(index, 1, self.min_cell - 1)
                self.program.targets.append((index, where))
            return
        self.program.narrow(index, *_rounding_window(int(value), self.round_to))

    def from_rate(self, index: int, rate: Any, denominator: int | None) -> None:
        top = _rounded_numerator(rate, denominator, self.round_to)
        if top is not None:
            self.program.narrow(index, *_rounding_window(top, self.round_to))

    def build(self) -> CountProgram:
        """Add this release's unknowns and relations to the program; returns it."""
        p = self.program
        performance = self.doc.get("performance") or {}
        dates = performance.get("per_as_of") or []
        outcomes = {row["as_of"]: row for row in self.doc.get("flagged_outcomes") or []}
        coverage = {row["as_of"]: row for row in (self.doc.get("coverage") or {}).get("test_as_of") or []}
        ns, positives, found, ks = [], [], [], []
        for i, row in enumerate(dates):
            as_of, k = row["as_of"], int(row["k"])
            model = str((self.doc.get("model") or {}).get("model_sha256") or self.doc.get("model"))
            n = self._date_variable((as_of, "residents"), f"{as_of} residents")
            pos = self._date_variable((as_of, "escalations"), f"{as_of} escalations")
            hit = self._date_variable((as_of, "found", model, str(k)), f"{as_of} flagged who escalated", k)
            missed = p.variable(f"{as_of} escalations missed")
            p.relate({pos: 1, hit: -1, missed: -1}, 0)
            p.relate({pos: 1, n: -1}, -_BIG, 0)
            p.relate({n: 1}, k, _BIG)
            self.published(n, row.get("n"), f"performance.per_as_of[{i}].n")
            if (row.get("withheld") or {}).get("positives") == POSITIVES_COMPLEMENT:
                p.narrow(pos, self.min_cell, _BIG)
            elif (row.get("withheld") or {}).get("positives") == EARLIER_WITHHELD:
                pass
            else:
                self.published(pos, row.get("positives"), f"performance.per_as_of[{i}].positives")
            cover = coverage.get(as_of) or {}
            if cover.get("cohort") is not None:
                self.published(n, cover["cohort"], "")
            if row.get("positives") is not None:
                # Found: rounded through precision (over the exact k) or withheld as small.
                reason = (row.get("withheld") or {}).get("precision_at_capacity")
                if reason == DATE_COMPLEMENT:
                    p.narrow(hit, self.min_cell, k)
                elif reason == EARLIER_WITHHELD:
                    pass
                elif row.get("precision_at_capacity") is None:
                    p.narrow(hit, 1, self.min_cell - 1)
                    p.targets.append((hit, f"performance.per_as_of[{i}].precision_at_capacity"))
                else:
                    self.from_rate(hit, row["precision_at_capacity"], k)
                outcome = outcomes.get(as_of) or {}
                if outcome.get("missed_share") is not None:
                    self.from_rate(missed, outcome["missed_share"], row["positives"])
                elif outcome and row.get("precision_at_capacity") is not None:
                    p.narrow(missed, 1, self.min_cell - 1)
                    p.targets.append((missed, f"flagged_outcomes[{i}].missed_share"))
                self.from_rate(hit, row.get("recall_at_capacity"), row["positives"])
            ns.append(n), positives.append(pos), found.append(hit), ks.append(k)
        total_n = p.variable("residents over the test dates")
        total_pos = p.variable("escalations over the test dates")
        total_found = p.variable("flagged who escalated over the test dates")
        if not dates:
            # A document with group tables only (the audit's fairness section): the tables still add up
            # to common totals, each other's and their intersections', and to the totals the audit
            # publishes beside them (everyone and the escalations rounded, the places on the lists exact).
            self.published(total_n, performance.get("n"), "performance.n", withheld_means_small=False)
            self.published(total_pos, performance.get("positives"), "performance.positives",
                           withheld_means_small=False)
            places = performance.get("places")
            self._fairness(total_n, total_pos, total_found, None if places is None else int(places))
            self._calibration(total_n, total_pos)
            self._cluster_sizes()
            return p
        p.relate({total_n: 1, **{v: -1 for v in ns}}, 0)
        p.relate({total_pos: 1, **{v: -1 for v in positives}}, 0)
        p.relate({total_found: 1, **{v: -1 for v in found}}, 0)
        self.published(total_n, performance.get("n"), "performance.n")
        if performance.get("positives_withheld") is None:
            self.published(total_pos, performance.get("positives"), "performance.positives")
        summary = performance.get("summary") or {}
        precision = (summary.get("precision_at_capacity") or {}).get("value")
        self.from_rate(total_found, precision, _round(sum(ks), self.round_to))
        if performance.get("positives") is not None:
            recall = (summary.get("recall_at_capacity") or {}).get("value")
            self.from_rate(total_found, recall, performance["positives"])
        self._calibration(total_n, total_pos)
        self._cluster_sizes()
        self._fairness(total_n, total_pos, total_found, sum(ks))
        self._not_recorded(total_n)
        return p

    def _cluster_sizes(self) -> None:
        """Linked residents per cluster-size band add up to every cluster; each shown share is a rounded count
        over the rounded number of clusters, which it gives away."""
        p = self.program
        bands = ((self.doc.get("linkage") or {}).get("cluster_sizes")) or []
        if not bands:
            return
        total = p.variable("clusters in every size band")
        terms: dict[int, float] = {total: 1.0}
        for j, row in enumerate(bands):
            band = p.variable(f"clusters of size {row.get('size')}")
            terms[band] = -1.0
            if row.get("withheld") == BAND_COMPLEMENT:
                p.narrow(band, self.min_cell, _BIG)
            else:
                self.published(band, row.get("clusters"), f"linkage.cluster_sizes[{j}].clusters")
            if row.get("clusters") and row.get("share"):
                self.published(total, int(round(row["clusters"] / row["share"])), "")
        p.relate(terms, 0)

    def _calibration(self, total_n: int, total_pos: int) -> None:
        from earlysignal.audit.assemble import CALIBRATION_BINS

        p = self.program
        bins = self.doc.get("calibration") or []
        if not bins:
            return
        dropped = max(0, CALIBRATION_BINS - len(bins))
        rest_n = p.variable("residents in dropped calibration bins", 0, dropped * (self.min_cell - 1))
        rest_pos = p.variable("escalations in dropped calibration bins")
        p.relate({rest_pos: 1, rest_n: -1}, -_BIG, 0)
        n_terms, pos_terms = {total_n: 1.0, rest_n: -1.0}, {total_pos: 1.0, rest_pos: -1.0}
        for j, row in enumerate(bins):
            n = p.variable(f"calibration bin {j} residents")
            pos = p.variable(f"calibration bin {j} escalations")
            p.relate({pos: 1, n: -1}, -_BIG, 0)
            self.published(n, row.get("n"), f"calibration[{j}].n", withheld_means_small=False)
            if row.get("n") is not None:
                if row.get("withheld") == BIN_COMPLEMENT:
                    pass
                elif row.get("observed") is None:
                    p.narrow(pos, 1, self.min_cell - 1)
                    p.targets.append((pos, f"calibration[{j}].observed"))
                else:
                    self.from_rate(pos, row["observed"], row["n"])
            n_terms[n] = -1.0
            pos_terms[pos] = -1.0
        p.relate(n_terms, 0)
        p.relate(pos_terms, 0)

    def _fairness(self, total_n: int, total_pos: int, total_found: int, places: int | None) -> None:
        p = self.program
        blocks = [b for b in (self.doc.get("fairness") or {}).get("characteristics") or [] if b.get("groups")]
        cells: dict[tuple[str, str], dict[str, int]] = {}
        total_flagged = p.variable("flagged over the test dates")
        # Two releases of one borough over the same test dates (a second model, a transfer bundle beside the home
        # one) hold the same residents: a group's size and escalations are the same unknowns in both, and its
        # flagged counts too under the same model and k, as the dates' counts are (_date_variable).
        rows = (self.doc.get("performance") or {}).get("per_as_of") or []
        over = tuple((row["as_of"], int(row["k"])) for row in rows)
        model = str((self.doc.get("model") or {}).get("model_sha256") or self.doc.get("model"))

        def cell(key: str, group: str, column: str) -> int:
            name = f"{key}={group} {column}"
            if not over:
                return p.variable(name)
            scope = ("group", *map(str, over)) + ((model,) if column in ("flagged", "tp") else ())
            return self._date_variable((*scope, key, group, column), name)

        for block in blocks:
            key = block["key"]
            sums: dict[str, dict[int, float]] = {"n": {total_n: 1.0}, "positives": {total_pos: 1.0},
                                                 "flagged": {}, "tp": {total_found: 1.0}}
            for row in block["groups"]:
                group = row["group"]
                where = f"fairness[{key}][{group}]"
                v = {c: cell(key, group, c) for c in ("n", "positives", "flagged", "tp")}
                cells[(key, group)] = v
                p.relate({v["positives"]: 1, v["n"]: -1}, -_BIG, 0)
                p.relate({v["flagged"]: 1, v["n"]: -1}, -_BIG, 0)
                p.relate({v["tp"]: 1, v["flagged"]: -1}, -_BIG, 0)
                p.relate({v["tp"]: 1, v["positives"]: -1}, -_BIG, 0)
                # Flagged who did not escalate cannot outnumber those who did not escalate.
                p.relate({v["flagged"]: 1, v["tp"]: -1, v["n"]: -1, v["positives"]: 1}, -_BIG, 0)
                reason = row.get("suppressed")
                if reason == "secondary":
                    p.narrow(v["n"], self.min_cell, _BIG)
                    p.narrow(v["positives"], self.min_cell, _BIG)
                elif reason == "primary":
                    # Primary: fewer than min_cell people or fewer than min_cell escalations (a binary switch).
                    # The big-M is the largest count the document could hold: a larger M makes HiGHS's
                    # tolerances (1e-6 relative) admit fractional switches and report false infeasibility.
                    switch = p.variable(f"{key}={group} small people (1) or escalations (0)", 0, 1)
                    p.relate({v["n"]: 1, switch: -self.big}, -_BIG, self.min_cell - 1)
                    p.relate({v["positives"]: 1, switch: self.big}, -_BIG, self.min_cell - 1 + self.big)
                    p.targets.append((v["positives"], f"{where}.positives"))
                    p.targets.append((v["n"], f"{where}.n"))
                elif reason is None:
                    self.published(v["n"], row.get("n"), f"{where}.n")
                    self.published(v["positives"], row.get("positives"), f"{where}.positives")
                    self.published(v["flagged"], row.get("flagged"), f"{where}.flagged")
                    self.from_rate(v["tp"], row.get("precision"), row.get("flagged"))
                    self.from_rate(v["tp"], row.get("recall"), row.get("positives"))
                    if row.get("flagged") and row.get("precision") is None:
                        p.narrow(v["tp"], 1, self.min_cell - 1)
                        p.targets.append((v["tp"], f"{where}.precision"))
                    if row.get("recall") is None and row.get("precision") is not None and row.get("positives"):
                        missed = p.variable(f"{key}={group} missed")
                        p.relate({missed: 1, v["positives"]: -1, v["tp"]: 1}, 0)
                        p.narrow(missed, 1, self.min_cell - 1)
                        p.targets.append((missed, f"{where}.recall"))
                for column in sums:
                    sums[column][v[column]] = -1.0
            if places is None:
                sums["flagged"][total_flagged] = 1.0
            for column, terms in sums.items():
                p.relate(terms, -places if column == "flagged" and places is not None else 0)
        # An intersection's groups add up to each of its attributes' groups.
        for block in blocks:
            attributes = block.get("attributes") or []
            if len(attributes) < 2:
                continue
            for position, attribute in enumerate(attributes):
                for (key, group), v in list(cells.items()):
                    if key != attribute:
                        continue
                    # Only labels that split into one word per attribute (a group word holding the join would not).
                    labels = {g2: g2.split(INTERSECTION_JOIN) for (k2, g2) in cells if k2 == block["key"]}
                    if any(len(words) != len(attributes) for words in labels.values()):
                        continue
                    parts = [cells[(block["key"], g2)] for g2, words in labels.items() if words[position] == group]
                    if not parts:
                        continue
                    for column in ("n", "positives", "flagged", "tp"):
                        p.relate({v[column]: 1.0, **{w[column]: -1.0 for w in parts}}, 0)
        self._cells = cells

    def _not_recorded(self, total_n: int) -> None:
        """The share not recorded per attribute gives the rounded size of its 'Not recorded' group."""
        p = self.program
        shown_n = (self.doc.get("performance") or {}).get("n")
        cells = getattr(self, "_cells", {})
        for row in (self.doc.get("coverage") or {}).get("not_recorded") or []:
            missing = _rounded_numerator(row.get("share_not_recorded"), shown_n, self.round_to)
            if missing is None:
                continue
            # Every group that means "not recorded" (the audit's word and the dictionary's) counts here.
            groups = [v["n"] for (key, group), v in cells.items()
                      if key == row.get("attribute") and group in self.not_recorded]
            if groups:
                p.relate(dict.fromkeys(groups, 1.0), *_rounding_window(missing, self.round_to))


def _largest_whole_number(document: Any) -> int:
    """The largest whole number anywhere in a document (a bound on its counts, settings aside)."""
    if isinstance(document, dict):
        return max((_largest_whole_number(v) for v in document.values()), default=0)
    if isinstance(document, list):
        return max((_largest_whole_number(v) for v in document), default=0)
    if isinstance(document, int) and not isinstance(document, bool):
        return abs(document)
    return 0


def _round(value: float, round_to: int) -> int:
    from earlysignal.audit.suppression import round_count

    return round_count(value, round_to)


def attack_release(release: dict[str, Any], not_recorded_groups: Sequence[str] = ("Not recorded",)) -> list[Bound]:
    """Every withheld count of a release with the range the differencing attack pins it to.

    release: a release.json document. not_recorded_groups: the group words that mean "not recorded"
    (the data dictionary's). Returns one Bound per withheld count; a count the program finds
    infeasible (the release's figures contradict each other) is reported as low > high.
    """
    return attack_releases([release], not_recorded_groups)


def attack_releases(releases: Sequence[dict[str, Any]],
                    not_recorded_groups: Sequence[str] = ("Not recorded",)) -> list[Bound]:
    """attack_release on several releases read together (one borough's releases over time, or its home and
    transfer bundles): a test date's counts are the same unknowns in each. Bounds of every release's
    withheld counts, in order."""
    program, shared = CountProgram(), {}
    min_cell = 10
    owner: list[int] = []
    for position, release in enumerate(releases):
        builder = _Release(release, not_recorded_groups, program, shared)
        builder.build()
        min_cell = builder.min_cell
        owner += [position] * (len(program.targets) - len(owner))
    out = []
    seen = set()
    for (index, where), position in zip(program.targets, owner, strict=True):
        if index in seen:
            continue
        seen.add(index)
        found = program.range_of(index)
        low, high = found if found is not None else (1, 0)
        out.append(Bound(program.names[index], where, low, high, min_cell, position))
    return out


def still_pinned(releases: Sequence[dict[str, Any]], name: str,
                 not_recorded_groups: Sequence[str] = ("Not recorded",), release: int | None = None) -> bool:
    """Whether the one withheld count called `name` (of the release at position `release`, when given) is still
    worked back from `releases` read together."""
    program, shared = CountProgram(), {}
    min_cell = 10
    owner: list[int] = []
    for position, document in enumerate(releases):
        builder = _Release(document, not_recorded_groups, program, shared)
        builder.build()
        min_cell = builder.min_cell
        owner += [position] * (len(program.targets) - len(owner))
    for (index, where), position in zip(program.targets, owner, strict=True):
        if program.names[index] == name and release in (None, position):
            found = program.range_of(index)
            low, high = found if found is not None else (1, 0)
            return Bound(name, where, low, high, min_cell).worked_back
    return False


def worked_back(release: dict[str, Any], not_recorded_groups: Sequence[str] = ("Not recorded",),
                earlier: Sequence[dict[str, Any]] = ()) -> list[Bound]:
    """The withheld counts a reader can pin more tightly than 1 to min_cell - 1 ([] when the release is safe),
    reading the release with the borough's `earlier` releases (whose withheld counts count too)."""
    return [b for b in attack_releases([*earlier, release], not_recorded_groups) if b.worked_back]


# Process-local memos, keyed by the SHA-256 of the documents' canonical JSON: what a set of earlier releases gives
# away on its own, and the (release, earlier) pairs close_differencing left with nothing worked back. `release`
# closes a release and then write_bundle checks the same documents again: the second attack is the first's answer.
_ALREADY: dict[str, frozenset[tuple[int, str]]] = {}
_CLOSED: set[str] = set()
# Sections of release.json that are not figures the attack reads (written beside the closed figures).
_NOT_ATTACKED = ("earlier_releases",)


def _documents_key(*parts: Any) -> str:
    import hashlib
    import json

    def strip(document: Any) -> Any:
        return {k: v for k, v in document.items() if k not in _NOT_ATTACKED} if isinstance(document, dict) else document

    payload = [[strip(d) for d in part] if isinstance(part, (list, tuple)) else strip(part) for part in parts]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _already_worked_back(earlier: Sequence[dict[str, Any]],
                         not_recorded_groups: Sequence[str]) -> frozenset[tuple[int, str]]:
    """The withheld counts (release position, name) the earlier releases give away read together on their own."""
    if not earlier:
        return frozenset()
    key = _documents_key(list(earlier), list(not_recorded_groups))
    if key not in _ALREADY:
        _ALREADY[key] = frozenset((b.release, b.name)
                                  for b in worked_back(earlier[-1], not_recorded_groups, earlier[:-1]))
    return _ALREADY[key]


def new_leaks(release: dict[str, Any], not_recorded_groups: Sequence[str] = ("Not recorded",),
              earlier: Sequence[dict[str, Any]] = ()) -> list[Bound]:
    """worked_back(release, ..., earlier) less what the earlier releases give away read on their own: a leak
    already published cannot be taken back, and must not block every later release."""
    if _documents_key(release, list(earlier), list(not_recorded_groups)) in _CLOSED:
        return []
    already = _already_worked_back(earlier, not_recorded_groups)
    return [b for b in worked_back(release, not_recorded_groups, earlier) if (b.release, b.name) not in already]


# ------------------------------------------------------------------------- closing what leaks

TOTAL_WITHHELD = ("withheld: a test date's number of flagged residents who escalated is withheld, and the total over "
                  "the dates less the dates shown would give it back (complementary suppression)")
COMPLEMENT = "secondary"
BIN_COMPLEMENT = ("observed rate withheld so that another band's withheld number of escalations cannot be worked "
                  "out from the total (complementary suppression)")
POSITIVES_COMPLEMENT = ("withheld so that another test date's withheld number of escalations cannot be worked out "
                        "from the total over the dates (complementary suppression); this date's is not small")
TOTAL_POSITIVES_WITHHELD = ("withheld: the escalations over the test dates would give a withheld count back "
                            "(complementary suppression)")
NOT_RECORDED_WITHHELD = ("withheld: with the group tables it would give back a small count of residents "
                         "(complementary suppression)")
BAND_COMPLEMENT = ("withheld so that a band with a handful of clusters cannot be worked out from the total "
                   "(complementary suppression); this band's is not small")
INTERSECTION_WITHHELD = ("not shown: its groups are so small that their counts could be worked out from the tables "
                         "of its characteristics, and hiding those tables' rows would lose more than this table shows")
EARLIER_WITHHELD = ("withheld because an earlier release of this borough withheld it: showing it now would undo "
                    "that release's suppression")
# A shown group whose own small cell (flagged who escalated, or missed) could be worked back: the whole row goes,
# published as a secondary suppression like any other. A reason of its own would tell the reader that a count
# inside the row is small, which is what the row is hidden to keep back.
SMALL_CELL = COMPLEMENT
DATE_COMPLEMENT = ("withheld so that another test date's withheld number found cannot be worked out from the total "
                   "over the dates (complementary suppression); this date's number found is not small")
# Rounds of complementary suppression beyond one per figure that can be withheld (each round withholds one,
# so the loop ends; this is a guard against a move that withholds nothing new).
EXTRA_ROUNDS = 5


def _withholdable(release: dict[str, Any]) -> int:
    """How many figures the loop could withhold: groups, dates (found and escalations), bins, bands, shares, totals."""
    groups = sum(len(b.get("groups") or []) for b in (release.get("fairness") or {}).get("characteristics") or [])
    dates = 2 * len((release.get("performance") or {}).get("per_as_of") or [])
    others = (len(release.get("calibration") or []) + len((release.get("linkage") or {}).get("cluster_sizes") or [])
              + len((release.get("coverage") or {}).get("not_recorded") or []) + 2)
    return groups + dates + others


def _hide_group(block: dict[str, Any], row: dict[str, Any], findings: list[dict[str, Any]],
                reason: str = COMPLEMENT) -> list[dict[str, Any]]:
    """Blank one fairness row as a complementary (secondary) suppression; drops its findings (and, for the
    reference group, every ratio and finding of the block, since they are measured against it)."""
    for key in list(row):
        if key not in ("group", "is_reference", "suppressed", "ratios"):
            row[key] = None
    row["suppressed"] = reason
    row["ratios"] = {}
    dropped = {row["group"]}
    if row.get("is_reference"):
        for other in block["groups"]:
            other["ratios"] = {}
        dropped = {g["group"] for g in block["groups"]}
    return [f for f in findings if not (f.get("characteristic") == block["key"] and f.get("group") in dropped)]


def _related_blocks(blocks: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The block itself, then the blocks its groups add up with (an intersection's attributes, or the
    intersections an attribute is part of)."""
    own = next(b for b in blocks if b["key"] == key)
    attributes = set(own.get("attributes") or [])
    others = [b for b in blocks if b is not own and (set(b.get("attributes") or []) & attributes)]
    return [own, *others]


def _complement_positives(release: dict[str, Any]) -> bool:
    """Withhold the escalations at the shown test date with fewest (everywhere they are published or follow
    from a rate); False when no date's are shown."""
    dates = (release.get("performance") or {}).get("per_as_of") or []
    shown = [row for row in dates if row.get("positives") is not None]
    if not shown:
        return False
    _withhold_date_positives(release, min(shown, key=lambda r: (r["positives"], r["as_of"])), POSITIVES_COMPLEMENT)
    return True


def _withhold_date_positives(release: dict[str, Any], row: dict[str, Any], reason: str) -> None:
    """Withhold one test date's escalations (`row` of performance.per_as_of) everywhere they are published or
    follow from a rate: the row's positives, base rate and recall, the date's missed share and its coverage."""
    row["positives"] = row["base_rate"] = row["recall_at_capacity"] = None
    row["withheld"] = {**(row.get("withheld") or {}), "positives": reason, "recall_at_capacity": reason}
    for outcome in release.get("flagged_outcomes") or []:
        if outcome.get("as_of") == row["as_of"]:
            outcome["missed_share"] = None
    for cover in (release.get("coverage") or {}).get("test_as_of") or []:
        if cover.get("as_of") == row["as_of"]:
            cover["escalations"] = cover["prevalence"] = None


def _withhold_total_positives(release: dict[str, Any]) -> bool:
    """Withhold the escalations over the test dates and the overall recall (which gives them back)."""
    performance = release.get("performance") or {}
    if performance.get("positives_withheld") is not None:
        return False
    performance["positives"] = None
    performance["positives_withheld"] = TOTAL_POSITIVES_WITHHELD
    recall = (performance.get("summary") or {}).get("recall_at_capacity")
    if recall is not None:
        performance["summary"]["recall_at_capacity"] = {"value": None, "ci_low": None, "ci_high": None,
                                                        "withheld": TOTAL_POSITIVES_WITHHELD}
    return True


def _complement_date(release: dict[str, Any]) -> bool:
    """Withhold the number found at the shown test date that finds fewest (its precision, recall, and the shares
    of flagged_outcomes that give it); False when no date's is shown."""
    dates = (release.get("performance") or {}).get("per_as_of") or []
    shown = [row for row in dates if row.get("precision_at_capacity") is not None]
    if not shown:
        return False
    row = min(shown, key=lambda r: (r["precision_at_capacity"] * r["k"], r["as_of"]))
    row["precision_at_capacity"] = row["recall_at_capacity"] = None
    row["withheld"] = {**(row.get("withheld") or {}), "precision_at_capacity": DATE_COMPLEMENT,
                       "recall_at_capacity": DATE_COMPLEMENT}
    for outcome in release.get("flagged_outcomes") or []:
        if outcome.get("as_of") == row["as_of"]:
            outcome["escalated_share"] = outcome["missed_share"] = None
    return True


def _close_one(release: dict[str, Any], leak: Bound, context: tuple[Sequence[str], Sequence[dict[str, Any]]]
               = (("Not recorded",), ())) -> bool:
    """One complementary suppression aimed at a worked-back count; False when nothing is left to hide."""
    where = leak.where
    summary = (release.get("performance") or {}).get("summary") or {}
    dated = where.startswith(("performance.per_as_of", "flagged_outcomes")) or leak.name.endswith("over the test dates")
    if dated and where.endswith(".positives") and _complement_positives(release):
        return True
    if dated and not where.endswith(".positives") and _complement_date(release):
        return True
    if dated:
        changed = False
        for metric in ("precision_at_capacity", "recall_at_capacity"):
            entry = summary.get(metric) or {}
            if entry.get("value") is not None:
                summary[metric] = {"value": None, "ci_low": None, "ci_high": None, "withheld": TOTAL_WITHHELD}
                changed = True
        if changed:
            return True
    if where.startswith("linkage.cluster_sizes"):
        bands = [b for b in (release.get("linkage") or {}).get("cluster_sizes") or [] if b.get("clusters") is not None]
        if bands:
            smallest = min(bands, key=lambda b: (b["clusters"], str(b.get("size"))))
            smallest["clusters"] = smallest["share"] = None
            smallest["withheld"] = BAND_COMPLEMENT
            return True
        return False
    if where.startswith("calibration["):
        bins = [b for b in release.get("calibration") or [] if b.get("observed") is not None]
        if bins:
            smallest = min(bins, key=lambda b: (b["observed"] * (b.get("n") or 0), b.get("mean_score") or 0))
            smallest["observed"] = None
            smallest["withheld"] = BIN_COMPLEMENT
            return True
        return False
    fairness = release.get("fairness") or {}
    blocks = [b for b in fairness.get("characteristics") or [] if b.get("groups")]
    if where.startswith("fairness["):
        key, group = where[len("fairness["):].split("][", 1)
        group = group.split("]", 1)[0]
    elif blocks:
        # A headline count still recoverable through the fairness tables' totals: hide where the tables
        # are most detailed (the block with the most shown groups).
        key = max(blocks, key=lambda b: sum(g.get("suppressed") is None for g in b["groups"]))["key"]
        group = None
    else:
        return False
    own = next((b for b in blocks if b["key"] == key), None)
    row = next((g for g in (own or {}).get("groups", []) if g["group"] == group), None)
    if row is not None and row.get("suppressed") is None:
        # The worked-back count is a small cell of a shown row: the row goes, then its complement if needed.
        fairness["findings"] = _hide_group(own, row, fairness.get("findings") or [], SMALL_CELL)
        return True
    candidates = _group_candidates(blocks, own, group, key)
    if own is not None and len(own.get("attributes") or []) >= 2 and (not candidates or candidates[0][0] != key):
        # Nothing left to hide in the intersection but its attributes' own rows, which are what a board reads:
        # the intersection's table goes instead (marginals outrank intersections).
        fairness["findings"] = [f for f in fairness.get("findings") or [] if f.get("characteristic") != key]
        own["groups"] = []
        own.pop("reference", None)
        own["withheld"] = INTERSECTION_WITHHELD
        return True
    if not candidates:
        return False
    # Look one move ahead among the candidates of the first kind (an intersection's own cells before the
    # attributes' tables, whose rows are what a board reads): the first after whose hiding this count is no
    # longer pinned; else the first, and the next round goes on (a rectangle of cells takes a few rounds).
    not_recorded_groups, earlier = context
    first_kind = [c for c in candidates if c[0] == candidates[0][0]]
    chosen = candidates[0]
    for block_key, name in first_kind[:12]:
        trial = copy.deepcopy(release)
        trial_blocks = [b for b in trial["fairness"]["characteristics"] if b.get("groups")]
        trial_block = next(b for b in trial_blocks if b["key"] == block_key)
        trial_row = next(g for g in trial_block["groups"] if g["group"] == name)
        trial["fairness"]["findings"] = _hide_group(trial_block, trial_row, trial["fairness"].get("findings") or [])
        if not still_pinned([*earlier, trial], leak.name, not_recorded_groups, leak.release):
            chosen = (block_key, name)
            break
    block = next(b for b in blocks if b["key"] == chosen[0])
    target = next(g for g in block["groups"] if g["group"] == chosen[1])
    fairness["findings"] = _hide_group(block, target, fairness.get("findings") or [])
    return True


def _group_candidates(blocks: list[dict[str, Any]], own: dict[str, Any] | None, group: str | None,
                      key: str) -> list[tuple[str, str]]:
    """Shown groups that could be hidden next for a count of `group` in table `key`, in order of preference:
    an intersection's cells sharing the group's row or column, the attributes' groups it adds up to, the
    rest of its own table, then related tables; smallest by people first and reference groups last."""
    def shown(block: dict[str, Any]) -> list[dict[str, Any]]:
        return [g for g in block["groups"] if g.get("suppressed") is None and g["group"] != group]

    def order(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return sorted(rows, key=lambda br: (bool(br[1].get("is_reference")), br[1].get("n") or 0,
                                            br[1].get("positives") or 0, br[0]["key"], br[1]["group"]))

    out: list[tuple[str, str]] = []

    def add(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        for block, row in order(rows):
            if (block["key"], row["group"]) not in out:
                out.append((block["key"], row["group"]))

    related = _related_blocks(blocks, key) if any(b["key"] == key for b in blocks) else []
    attributes = (own or {}).get("attributes") or []
    words = group.split(INTERSECTION_JOIN) if group else []
    if own is not None and len(attributes) >= 2 and len(words) == len(attributes):
        add([(own, g) for g in shown(own)
             if any(w == word for w, word in zip(g["group"].split(INTERSECTION_JOIN), words, strict=False))])
        marginals = []
        for attribute, word in zip(attributes, words, strict=True):
            block = next((b for b in blocks if b["key"] == attribute), None)
            if block is not None:
                marginals += [(block, g) for g in block["groups"] if g["group"] == word and g.get("suppressed") is None]
        add(marginals)
    for block in related:
        add([(block, g) for g in shown(block)])
    return out


def _close_with_fallback(release: dict[str, Any], leak: Bound,
                         context: tuple[Sequence[str], Sequence[dict[str, Any]]] = (("Not recorded",), ())) -> bool:
    """The aimed suppression, else the totals over the test dates (escalations, then the number found)."""
    if _close_one(release, leak, context):
        return True
    # The share of residents whose characteristic is not recorded gives the rounded size of its "Not recorded"
    # group: the next figure to withhold when a group's count is still pinned.
    for row in (release.get("coverage") or {}).get("not_recorded") or []:
        if row.get("share_not_recorded") is not None and leak.where.startswith("fairness["):
            row["share_not_recorded"] = None
            row["withheld"] = NOT_RECORDED_WITHHELD
            return True
    if "performance" in release:
        if _withhold_total_positives(release):
            return True
        summary = (release.get("performance") or {}).get("summary") or {}
        if (summary.get("precision_at_capacity") or {}).get("value") is not None:
            for metric in ("precision_at_capacity", "recall_at_capacity"):
                summary[metric] = {"value": None, "ci_low": None, "ci_high": None, "withheld": TOTAL_WITHHELD}
            return True
    return _complement_unrelated_group(release, leak)


def _complement_unrelated_group(release: dict[str, Any], leak: Bound) -> bool:
    """Last resort for a group's count: hide a shown group of a table unrelated to the leak's. Every
    characteristic's groups add up to the same everyone, so with the totals withheld a shown group of, say,
    disability still bounds the escalations from below and, with a table whose groups are all small, pins
    one of them (e.g. both sexes withheld, 15 not-disabled escalations shown: women 15 - 9 = 6 or more).
    The smallest non-reference group first, as _group_candidates orders; False when none is shown."""
    if not leak.where.startswith("fairness["):
        return False
    fairness = release.get("fairness") or {}
    blocks = [b for b in fairness.get("characteristics") or [] if b.get("groups")]
    shown = [(b, g) for b in blocks for g in b["groups"] if g.get("suppressed") is None]
    if not shown:
        return False
    block, row = min(shown, key=lambda br: (bool(br[1].get("is_reference")), br[1].get("n") or 0,
                                            br[1].get("positives") or 0, br[0]["key"], br[1]["group"]))
    fairness["findings"] = _hide_group(block, row, fairness.get("findings") or [])
    return True


def _keep_earlier_suppressions(release: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> None:
    """Withhold, at each test date, what an earlier release of the same borough withheld at that date (the
    number found with the same model and k; the escalations), so that the new release cannot undo it."""
    model = (release.get("model") or {}).get("model_sha256")
    for old in earlier:
        if old.get("borough") != release.get("borough"):
            continue
        same_model = model is not None and (old.get("model") or {}).get("model_sha256") == model
        before = {(row["as_of"], int(row["k"])): row for row in (old.get("performance") or {}).get("per_as_of") or []}
        for row in (release.get("performance") or {}).get("per_as_of") or []:
            was = before.get((row["as_of"], int(row["k"])))
            if was is None:
                continue
            if was.get("positives") is None and row.get("positives") is not None:
                _withhold_date_positives(release, row, EARLIER_WITHHELD)
            if same_model and was.get("precision_at_capacity") is None and row.get("precision_at_capacity") is not None:
                row["precision_at_capacity"] = row["recall_at_capacity"] = None
                row["withheld"] = {**(row.get("withheld") or {}), "precision_at_capacity": EARLIER_WITHHELD,
                                   "recall_at_capacity": EARLIER_WITHHELD}
                for outcome in release.get("flagged_outcomes") or []:
                    if outcome.get("as_of") == row["as_of"]:
                        outcome["escalated_share"] = outcome["missed_share"] = None


def close_differencing(release: dict[str, Any], not_recorded_groups: Sequence[str] = ("Not recorded",),
                       earlier: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The release with complementary suppressions added until no withheld count can be worked back.

    earlier: the borough's earlier releases (release.json documents) a reader may hold; what they withheld
    at a test date is withheld again, and the attack reads them with this one. Each round runs the
    attack and, for the first count it pins, withholds one more figure: for a date's count, the same
    count at the shown date with fewest (else the total over the dates); for a group's count, the
    group's own row when the count is a small cell inside it, else the next smallest shown group of the
    same or a related table; for a calibration bin or a cluster band, the smallest one shown; then the
    not-recorded shares and the totals. Deterministic. Returns a new document; raises ValueError when a
    count is still worked back after one round per figure that can be withheld (plus EXTRA_ROUNDS) or
    when nothing is left to withhold (the release must not leave).
    """
    out = copy.deepcopy(release)
    _keep_earlier_suppressions(out, earlier)
    # What the earlier releases give away on their own, this one cannot take back.
    already = _already_worked_back(earlier, not_recorded_groups)
    rounds = _withholdable(out) + EXTRA_ROUNDS
    for _ in range(rounds):
        leaks = [b for b in worked_back(out, not_recorded_groups, earlier) if (b.release, b.name) not in already]
        if not leaks:
            _CLOSED.add(_documents_key(out, list(earlier), list(not_recorded_groups)))
            return out
        if not _close_with_fallback(out, leaks[0], (not_recorded_groups, earlier)):
            raise ValueError(f"{leaks[0].name} ({leaks[0].where}) can be worked back to {leaks[0].low}-"
                             f"{leaks[0].high} and there is nothing left to withhold")
    leaks = [b for b in worked_back(out, not_recorded_groups, earlier) if (b.release, b.name) not in already]
    if leaks:
        raise ValueError(f"{len(leaks)} withheld count(s) can still be worked back after {rounds} complementary "
                         f"suppressions, e.g. {leaks[0].name} ({leaks[0].where}) to {leaks[0].low}-{leaks[0].high}")
    return out
