"""Spending records and prices (distill/cost.py): exact figures."""

from __future__ import annotations

import json

import pytest

from distill.cost import Meter, Prices, fmt_money, money, record_run, total_spent


def test_a_run_noted_twice_is_one_entry_and_runs_add_up(tmp_path):
    m1 = Meter()
    record_run(
        tmp_path, 0, m1, requests=1, prompt_tokens=10, completion_tokens=100, accelerators=1, complete=False
    )
    record_run(
        tmp_path, 0, m1, requests=3, prompt_tokens=30, completion_tokens=300, accelerators=1, complete=True
    )
    record_run(
        tmp_path,
        1,
        Meter(),
        requests=2,
        prompt_tokens=20,
        completion_tokens=50,
        accelerators=1,
        complete=True,
    )
    runs = json.loads((tmp_path / "spent" / "worker-00000.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["completion_tokens"] == 300 and runs[0]["complete"]
    total = total_spent(tmp_path)
    assert (total["runs"], total["requests"], total["prompt_tokens"], total["completion_tokens"]) == (
        2,
        5,
        50,
        350,
    )
    assert "money" not in total  # unpriced


def test_money_applies_each_price_that_is_set():
    spent = {"prompt_tokens": 2_000_000, "completion_tokens": 500_000, "accelerator_hours": 3.0}
    assert money(spent, Prices(input_per_million=0.5, output_per_million=2.0)) == 2.0
    assert money(spent, Prices(accelerator_hour=2.5)) == 7.5
    assert money(spent, Prices(input_per_million=0.5, output_per_million=2.0, accelerator_hour=2.5)) == 9.5
    assert not Prices().priced and Prices(accelerator_hour=0).priced


def test_priced_totals_carry_the_prices(tmp_path):
    (tmp_path / "spent").mkdir()
    (tmp_path / "spent" / "worker-00000.json").write_text(
        json.dumps(
            {"runs": [{"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "accelerator_hours": 0}]}
        )
    )
    total = total_spent(tmp_path, Prices(input_per_million=3, output_per_million=15, currency="EUR"))
    assert total["money"] == 18.0 and total["prices"]["currency"] == "EUR"
    assert total_spent(tmp_path / "nothing") is None


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (0.0123, "USD", "$0.0123"),
        (1234.5, "USD", "$1,234.50"),
        (2.0, "EUR", "€2.00"),
        (3.0, "CHF", "3.00 CHF"),
    ],
)
def test_amounts_are_shown_with_their_currency(amount, currency, text):
    assert fmt_money(amount, currency) == text
