"""The train stage: an SFT set -> a student model folder (TRL's SFTTrainer on accelerate).

- `run`: the stage (prepare: the tokenized cache rank 0 writes and the other ranks memory-map; train,
  resume, export, the manifest)
- `data`: SFT rows -> tokens, as Arrow in batches (the chat template, assistant-only labels, the
  length policy, the drop accounting)
- `template`: which chat template, and where the assistant turns are in a rendering
- `trainer`: hardware choices, SFTConfig, the student, LoRA; `attention`: packed attention without
  FlashAttention; `export`: the final Hugging Face folder; `logs`: the JSONL log and progress row
- `config`: the recipe's `train` section; `command`: `distill train-student`

torch, transformers and TRL are imported here only, never by the layers below.
"""
