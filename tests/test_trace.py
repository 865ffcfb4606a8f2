from distill.trace import assistant_text, ends_with_think, split_reasoning


def test_split_prefilled_trace():
    s = split_reasoning("Let me add.\n2+3=5\n</think>\n\nThe answer is \\boxed{5}.", think_opened=True)
    assert s.reasoning == "Let me add.\n2+3=5" and s.content == "The answer is \\boxed{5}."


def test_split_with_opening_tag_in_text_and_hidden_opening_tag():
    assert split_reasoning("<think>\nr\n</think>\nc", think_opened=False) == split_reasoning(
        "r\n</think>\nc", False
    )
    s = split_reasoning("r\n</think>\nc", think_opened=False)
    assert (s.reasoning, s.content) == ("r", "c")


def test_split_repeated_opening_tag_after_prefill():
    s = split_reasoning("<think>\nr\n</think>c", think_opened=True)
    assert (s.reasoning, s.content) == ("r", "c")


def test_split_truncated_trace_has_no_content():
    s = split_reasoning("thinking forever and", think_opened=True)
    assert s.reasoning == "thinking forever and" and s.content is None


def test_split_no_tags_at_all_is_content_only():
    s = split_reasoning("2 + 3 = 5", think_opened=False)
    assert s.reasoning is None and s.content == "2 + 3 = 5"


def test_tag_text_inside_the_answer_stays_in_the_answer():
    s = split_reasoning("r</think>Use </think> to close and <think> to open.", think_opened=True)
    assert s.reasoning == "r" and s.content == "Use </think> to close and <think> to open."


def test_ends_with_think_and_assistant_text():
    assert ends_with_think("<|im_start|>assistant\n<think>\n")
    assert not ends_with_think("<|im_start|>assistant\n")
    assert assistant_text("r", "c") == "<think>\nr\n</think>\n\nc"
    assert assistant_text(None, "c") == "c"  # no reasoning: the answer alone
