"""Chat templates for training: which one to use, and where the assistant turns are in a rendering.

The student's own template is used when it keeps the reasoning. Some templates drop it: the
DeepSeek-R1-Distill template cuts everything up to `</think>` from every assistant turn, and the
Qwen3 template drops the `<think>` block of assistant turns before the last user turn. A template is
checked by rendering a probe conversation (two turns when the data has multi-turn rows) and looking
for the reasoning in the text and in the decoded tokens. A template that fails, or a student without
one (a base model), gets DEFAULT_CHAT_TEMPLATE instead, with a warning.

Assistant spans are found by rendering: the conversation up to an assistant turn with the
generation prompt must be a prefix of the conversation including that turn, which must be a prefix of
the whole rendering. Any template with that property works, `{% generation %}` markers or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import UserError

# ChatML, as Qwen2.5/Qwen3 and SmolLM2 use it, without a default system prompt. The assistant content is
# rendered verbatim (it carries `<think>\n...\n</think>\n\n`); a `reasoning_content` field, when a message
# has one and no <think> block, is rendered as that block. No <think> prefill: the student learns to open it.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- set content = message['content'] if message['content'] is string else '' %}"
    "{%- if message['role'] == 'assistant' and message['reasoning_content'] is defined"
    " and message['reasoning_content'] is string and '<think>' not in content %}"
    "{%- set content = '<think>\\n' + message['reasoning_content'].strip('\\n') + '\\n</think>\\n\\n'"
    " + content.lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
DEFAULT_TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>")
DEFAULT_END_OF_TURN = "<|im_end|>"

_PROBE_REASONING = ("probe: 17 + 4, add the units first", "probe: 21 + 1, count up by one")


class TemplateMismatch(ValueError):
    """The template renders a conversation prefix inconsistently with the whole conversation."""


@dataclass
class TemplateChoice:
    template: str
    source: str  # "model", "default" or the path of a .jinja file
    warning: str | None = None
    added_tokens: list[str] = field(default_factory=list)


def render(tokenizer: Any, template: str, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )


def assistant_spans(tokenizer: Any, template: str, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it."""
    text = render(tokenizer, template, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, template, messages[:i], generation_prompt=True) if i else ""
        upto = render(tokenizer, template, messages[: i + 1])
        if not upto.startswith(before) or not text.startswith(upto):
            raise TemplateMismatch(f"the rendering of turn {i} is not a prefix of the whole conversation")
        if len(upto) > len(before):
            spans.append((len(before), len(upto)))
    return text, spans


def tokenize_with_spans(
    tokenizer: Any, text: str, spans: list[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """Token ids of `text` and labels: the id inside an assistant span (by the token's first character), else -100."""
    import numpy as np

    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    starts = np.fromiter((start for start, _end in enc["offset_mapping"]), dtype=np.int64, count=len(ids))
    inside = np.zeros(len(ids), dtype=bool)
    for begin, end in spans:  # spans do not overlap: a token is trained on when its first character is in one
        inside |= (starts >= begin) & (starts < end)
    return ids, np.where(inside, np.asarray(ids, dtype=np.int64), -100).tolist()


def probe_messages(multi_turn: bool) -> list[dict]:
    messages = [
        {"role": "user", "content": "What is 17 + 4?"},
        {"role": "assistant", "content": f"<think>\n{_PROBE_REASONING[0]}\n</think>\n\n21"},
    ]
    if multi_turn:
        messages += [
            {"role": "user", "content": "And 21 + 1?"},
            {"role": "assistant", "content": f"<think>\n{_PROBE_REASONING[1]}\n</think>\n\n22"},
        ]
    return messages


def check_template(tokenizer: Any, template: str, multi_turn: bool = False) -> str | None:
    """None when `template` keeps every assistant turn's reasoning through tokenization, else why not."""
    messages = probe_messages(multi_turn)
    wanted = _PROBE_REASONING[: 2 if multi_turn else 1]
    try:
        text = render(tokenizer, template, messages)
        if any(reasoning not in text for reasoning in wanted):
            return "it strips the <think> reasoning from assistant turns"
        text, spans = assistant_spans(tokenizer, template, messages)
    except TemplateMismatch as exc:
        return str(exc)
    except Exception as exc:  # a Jinja error in a user-supplied template
        return f"it does not render ({type(exc).__name__}: {exc})"
    _ids, labels = tokenize_with_spans(tokenizer, text, spans)
    trained = tokenizer.decode([t for t in labels if t != -100])
    for reasoning in wanted:
        if reasoning not in trained or "think>" not in trained:
            return "the reasoning does not survive tokenization inside the assistant turn"
    return None


def choose_template(tokenizer: Any, requested: str | None, multi_turn: bool) -> TemplateChoice:
    """The template to train with (see the module docstring); raises UserError for a bad explicit file."""
    if requested == "default":
        return _default_choice(tokenizer, None)
    if requested is not None:
        path = Path(requested).expanduser()
        if not path.is_file():
            raise UserError(f"chat template not found: {path}")
        template = path.read_text(encoding="utf-8")
        problem = check_template(tokenizer, template, multi_turn)
        if problem:
            raise UserError(f"chat template {path}: {problem}")
        return TemplateChoice(template, str(path))
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if not own:
        return _default_choice(
            tokenizer, "the student has no chat template; using the default ChatML template"
        )
    problem = check_template(tokenizer, own, multi_turn)
    if problem is None:
        return TemplateChoice(own, "model")
    return _default_choice(
        tokenizer,
        f"the student's chat template is not usable for training ({problem}); using the default one",
    )


def _default_choice(tokenizer: Any, warning: str | None) -> TemplateChoice:
    vocab = tokenizer.get_vocab()
    missing = [t for t in DEFAULT_TEMPLATE_TOKENS if t not in vocab]
    return TemplateChoice(DEFAULT_CHAT_TEMPLATE, "default", warning, missing)


def prepare_tokenizer(tokenizer: Any, choice: TemplateChoice) -> list[int]:
    """Install the chosen template (and the default template's special tokens); returns added token ids."""
    added = []
    if choice.added_tokens:
        tokenizer.add_tokens(list(choice.added_tokens), special_tokens=True)
        added = tokenizer.convert_tokens_to_ids(list(choice.added_tokens))
    if choice.source == "default":
        tokenizer.eos_token = DEFAULT_END_OF_TURN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = choice.template
    return added
