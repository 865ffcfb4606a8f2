"""Chat templates: the <think> block survives rendering and tokenization, strippers fall back to the default."""

from __future__ import annotations

import pytest

from distill.errors import UserError
from distill.train.data import tokenize_conversation
from distill.train.template import DEFAULT_CHAT_TEMPLATE, check_template, choose_template, prepare_tokenizer

# Written inline after the public templates (no hub downloads); tools and other branches left out.
QWEN25 = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) or message.role == 'assistant' %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
# DeepSeek-R1-Distill: cuts everything up to </think> from every assistant turn, prefills <think>.
R1_DISTILL = (
    "{{ bos_token }}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}"
    "{%- if message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{%- endif %}"
    "{%- endfor %}{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)
# Qwen3: keeps <think> only on assistant turns after the last user turn.
QWEN3 = (
    "{%- set ns = namespace(last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if message.role == 'user' and ns.last_query_index == messages|length - 1 %}"
    "{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}{%- set content = message.content %}"
    "{%- if message.role == 'assistant' %}"
    "{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}{{- '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

REASONING = "Add 17 and 4: 17 + 4 = 21."
ROW = [
    {"role": "user", "content": "What is 17 + 4?"},
    {"role": "assistant", "content": f"<think>\n{REASONING}\n</think>\n\nThe answer is 21."},
]
TWO_TURNS = [
    *ROW,
    {"role": "user", "content": "And plus one?"},
    {"role": "assistant", "content": "<think>\nOne more than 21 is 22.\n</think>\n\n22."},
]


def trained_text(tokenizer, template, messages):
    ids, labels, reason = tokenize_conversation(tokenizer, template, messages, 4096, False)
    assert reason is None
    # Round trip: what the loss sees, decoded back to text.
    return tokenizer.decode([t for t in labels if t != -100]), tokenizer.decode(ids)


@pytest.mark.parametrize(
    "name", ["builtin-chatml", "qwen2.5", "llama3", "default", "r1-distill-fallback", "qwen3-fallback"]
)
def test_think_block_survives_every_supported_template(tokenizer, name):
    template = {
        "builtin-chatml": tokenizer.chat_template,
        "qwen2.5": QWEN25,
        "llama3": LLAMA3,
        "default": DEFAULT_CHAT_TEMPLATE,
        "r1-distill-fallback": R1_DISTILL,
        "qwen3-fallback": QWEN3,
    }[name]
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = template
    choice = choose_template(tok, None, multi_turn=True)
    if name.endswith("fallback"):
        assert choice.source == "default" and "strips" in choice.warning
    else:
        assert choice.source == "model" and choice.warning is None
    prepare_tokenizer(tok, choice)
    for messages in (ROW, TWO_TURNS):
        trained, full = trained_text(tok, choice.template, messages)
        assert f"<think>\n{REASONING}\n</think>" in trained
        assert "What is 17 + 4?" in full and "What is 17 + 4?" not in trained
        if messages is TWO_TURNS:
            assert "One more than 21 is 22." in trained and "And plus one?" not in trained


def test_stripping_templates_are_detected(tokenizer):
    assert check_template(tokenizer, R1_DISTILL) is not None
    assert check_template(tokenizer, QWEN3, multi_turn=False) is None  # single turn: the last turn keeps it
    assert "strips" in check_template(tokenizer, QWEN3, multi_turn=True)
    for template in (tokenizer.chat_template, QWEN25, LLAMA3, DEFAULT_CHAT_TEMPLATE):
        assert check_template(tokenizer, template, multi_turn=True) is None


def test_qwen3_template_is_kept_for_single_turn_data(tokenizer):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = QWEN3
    assert choose_template(tok, None, multi_turn=False).source == "model"


def test_base_model_without_template_gets_the_default(tokenizer):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = None
    choice = choose_template(tok, None, multi_turn=False)
    assert choice.source == "default" and "no chat template" in choice.warning
    assert choice.added_tokens == []  # the built-in vocabulary has <|im_start|> and <|im_end|>
    prepare_tokenizer(tok, choice)
    assert tok.eos_token == "<|im_end|>"
    rendered = tok.apply_chat_template(ROW, tokenize=False)
    assert rendered.startswith(
        "<|im_start|>user\nWhat is 17 + 4?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


def test_default_template_renders_reasoning_content_field(tokenizer):
    messages = [ROW[0], {"role": "assistant", "content": "21", "reasoning_content": REASONING}]
    text = tokenizer.apply_chat_template(messages, chat_template=DEFAULT_CHAT_TEMPLATE, tokenize=False)
    assert f"<|im_start|>assistant\n<think>\n{REASONING}\n</think>\n\n21<|im_end|>\n" in text


def test_default_template_adds_missing_marker_tokens(tokenizer):
    from distill.train.template import _default_choice

    class NoChatML:
        def get_vocab(self):
            return {"a": 0}

    assert _default_choice(NoChatML(), None).added_tokens == ["<|im_start|>", "<|im_end|>"]


def test_explicit_template_file(tokenizer, tmp_path):
    good, bad = tmp_path / "good.jinja", tmp_path / "bad.jinja"
    good.write_text(QWEN25)
    bad.write_text(R1_DISTILL)
    assert choose_template(tokenizer, str(good), multi_turn=False).source == str(good)
    with pytest.raises(UserError, match="strips"):
        choose_template(tokenizer, str(bad), multi_turn=False)
    with pytest.raises(UserError, match="not found"):
        choose_template(tokenizer, str(tmp_path / "missing.jinja"), multi_turn=False)
    assert choose_template(tokenizer, "default", multi_turn=False).source == "default"
