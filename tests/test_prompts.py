from distill.prompts import MATH_INSTRUCTION, PromptConfig, chat_messages, user_prompt


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
