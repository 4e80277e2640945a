"""What `earlysignal release` prints about the figures it released: a mean AUC over some test dates only
is said to be one, so it is not read as the training run's AUC over every date."""

from __future__ import annotations

from earlysignal.commands.federation import release_summary_words


def _performance(auc_over: list[str], precision: float | None) -> dict:
    dates = ["2024-10-01", "2025-01-01", "2025-04-01", "2025-07-01"]
    return {
        "per_as_of": [{"as_of": d} for d in dates],
        "summary": {
            "precision_at_capacity": {"value": precision, "ci_low": None if precision is None else 0.05,
                                      "ci_high": None if precision is None else 0.09},
            "recall_at_capacity": {"value": None, "ci_low": None, "ci_high": None},
            "roc_auc": {"value": 0.77, "ci_low": 0.66, "ci_high": 0.86, "over_as_of": auc_over},
        },
    }


def test_an_auc_over_some_test_dates_says_how_many_and_why_the_rest_are_left_out():
    words = release_summary_words(_performance(["2025-04-01", "2025-07-01"], None))
    assert words == (
        "roc auc 0.77 (0.66-0.86) (mean over 2 of 4 test dates; the others' AUC is withheld: small numbers); "
        "withheld (small numbers): precision at capacity, recall at capacity"
    )


def test_figures_over_every_test_date_are_printed_with_their_intervals_only():
    every = ["2024-10-01", "2025-01-01", "2025-04-01", "2025-07-01"]
    words = release_summary_words(_performance(every, 0.07))
    assert words == (
        "precision at capacity 0.07 (0.05-0.09); roc auc 0.77 (0.66-0.86); "
        "withheld (small numbers): recall at capacity"
    )



def test_a_figure_withheld_as_a_complement_is_not_called_small():
    """The overall recall withheld so that a date's small count cannot be worked back is not a small number itself;
    the console said "withheld (small numbers)" for it (a 3,000-resident trial borough)."""
    performance = _performance(["2025-04-01", "2025-07-01"], None)
    performance["summary"]["recall_at_capacity"]["withheld"] = (
        "withheld: the escalations over the test dates would give a withheld count back (complementary suppression)")
    assert release_summary_words(performance) == (
        "roc auc 0.77 (0.66-0.86) (mean over 2 of 4 test dates; the others' AUC is withheld: small numbers); "
        "withheld (small numbers): precision at capacity; withheld so that a small count cannot be worked back "
        "(complementary suppression): recall at capacity"
    )
