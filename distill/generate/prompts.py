"""Transitional: the prompt format moved to the ground floor, `distill/prompts.py`. distill/filter
still imports `user_prompt` from here; remove this module once it imports `distill.prompts`."""

from distill.prompts import chat_messages as chat_messages
from distill.prompts import user_prompt as user_prompt
