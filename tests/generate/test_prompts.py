from distill.generate.config import MATH_INSTRUCTION, PromptConfig
from distill.generate.prompts import chat_messages, user_prompt
from distill.trace import assistant_text, ends_with_think, split_reasoning


def test_math_prompt_follows_the_r1_recipe():
    cfg = PromptConfig()
    text = user_prompt("What is 2+3?", "math", cfg)
    assert text == "What is 2+3?\n" + MATH_INSTRUCTION
    assert MATH_INSTRUCTION == "Please reason step by step, and put your final answer within \\boxed{}."
    assert chat_messages(text, cfg) == [{"role": "user", "content": text}]  # no system prompt


def test_templates_are_overridable_and_validated():
    cfg = PromptConfig(templates={"general": "Q: {problem}"}, system_prompt="sys")
    assert user_prompt("hi", "general", cfg) == "Q: hi"
    assert cfg.templates["math"].endswith(MATH_INSTRUCTION)  # others keep defaults
    assert chat_messages("x", cfg)[0] == {"role": "system", "content": "sys"}
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must contain"):
        PromptConfig(templates={"math": "no placeholder"})
    with pytest.raises(ValidationError, match="unknown domain"):
        PromptConfig(templates={"poetry": "{problem}"})


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
