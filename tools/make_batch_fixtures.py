#!/usr/bin/env python3
"""Makes the tokenizer that `canopy run-batch` tests pair with the tiny random-weight models.

The tiny models (tests/data/models) have a 512-token vocabulary and no tokenizer. run-batch works
on text, so its tests need a tokenizer whose vocabulary is exactly those 512 ids (any id the model
samples must decode). This script trains a byte-level BPE of 512 tokens on a small fixed English
text with Hugging Face `tokenizers`:

  ids 0, 1, 2   <unk>, <s>, </s> (special; <s> = 1 and </s> = 2 are the tiny models' BOS and EOS)
  ids 3..258    the 256 byte tokens
  ids 259..511  253 merges

and writes tests/data/api/tiny-tokenizer/:
  tokenizer.json         the tokenizer; its post-processor adds <s> in front of a prompt
  tokenizer_config.json  bos/eos tokens and a small chat template (role lines between <s> ... </s>)

Deterministic (the trainer's result depends only on the text). Needs the `tokenizers` package:
  /work/venv/bin/python tools/make_batch_fixtures.py
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "api", "tiny-tokenizer")
VOCAB = 512
SPECIALS = ["<unk>", "<s>", "</s>"]

CORPUS = """
Many requests share a prefix: a long system prompt, a few-shot preamble, a document that every
question is about. An engine that reads the same prefix once per sequence spends its time moving
the same bytes again and again. Reading each shared prefix once per step turns the work into
matrix products, and the answer is exactly the same. The capital of France is Paris. The capital
of Italy is Rome. Water boils at one hundred degrees. The quick brown fox jumps over the lazy dog.
Question: what is the answer? Answer: the answer is in the document. Please summarize the text
in one sentence. Translate the sentence into French. Write a short poem about the sea and the
mountains. The user asks and the assistant answers, politely and briefly, with the facts.
"""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ bos_token }}{{ message['role'] }}\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ bos_token }}assistant\n{% endif %}"
)


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    os.makedirs(OUT, exist_ok=True)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    config = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 512,
    }
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    # A check the C++ tests repeat: the chat prompt of one user message, and its ids.
    text = "<s>user\nWhat is the capital of France?</s>\n<s>assistant\n"
    print(text.encode(), tok.encode(text, add_special_tokens=False).ids)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
