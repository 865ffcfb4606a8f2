import math

import pytest

from distill.eval.metrics import consensus_correct, pass_at_k, summarize


def test_pass_at_k_matches_the_closed_form():
    # n=5 samples, c=2 correct, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # pass@1 = c/n
    assert pass_at_k(4, 0, 3) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # n - c < k: any 3 of 4 include a correct one
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_consensus_majority_vote():
    assert consensus_correct(["18", "18", "20", None], [True, True, False, False])
    assert not consensus_correct(["20", "18", "20", "18", "20"], [False, True, False, True, False])
    assert consensus_correct(["7", "9"], [True, False])  # a tie: the answer seen first wins
    assert not consensus_correct([None, None], [False, False])


def test_summarize_hand_computed():
    problems = [
        {"correct": [True, False, False, False], "answers": ["1", "2", "2", "3"]},  # pass@1 .25, cons wrong
        {"correct": [True, True, True, False], "answers": ["5", "5", "5", "6"]},  # pass@1 .75, cons right
    ]
    m = summarize(problems, ks=[1, 2, 4])
    assert m["pass@1"] == pytest.approx(0.5)
    # pass@2: problem 1: 1 - C(3,2)/C(4,2) = 0.5; problem 2: 1 - C(1,2)/C(4,2) = 1
    assert m["pass@2"] == pytest.approx(0.75)
    assert m["pass@4"] == pytest.approx(1.0)
    assert m["cons@4"] == pytest.approx(0.5)
