#!/usr/bin/env python3
"""Generates canopy's tokenizer goldens: the token ids Hugging Face `tokenizers` produces for a
corpus of varied strings, one JSON-lines file per tokenizer under tests/data/tokenizer/.

    python tools/make_tokenizer_goldens.py [--shared ../shared] [--model PATH]

Needs the PyPI packages `tokenizers`, `sentencepiece` and `gguf` (for the default model's vocabulary). CI does not
run this script; it runs the C++ tests against the committed output.

corpus.jsonl holds the input strings, one JSON string per line. Each tokenizer's file starts with a
header line {"tokenizer": ..., "source": ..., "cases": N} and then holds one JSON object per line,
the k-th for the k-th string T of the corpus:
  {"ids": [...]}                                  encode(T) with special-token text parsed, no BOS/EOS
    "ids_no_special": [...]   only when it differs: special-token text treated as plain text
    "ids_add_special": [...]  only for some cases: encode(T, add_special_tokens=True)
    "decoded": D              only when decode(ids) != T
  {"decode_ids": [...], "decoded": D, "decoded_skip_special": S}   decode of arbitrary ids
A header may say "parse_special": false (the ids were made with special-token text as plain
text) and "decode_skips_special": true (the reference decode leaves special tokens out).
"""
import argparse
import json
import os
import random
import sys
import unicodedata

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, AddedToken

SEED = 20261125

# ---- the corpus ------------------------------------------------------------------------------

PROSE = """\
canopy reads each shared prefix once per step and turns the work into matrix products. The
tokenizer must agree with the reference tokenizer on every input, including odd ones: runs of
spaces, tabs and newlines; numbers like 3.14159, 1,000,000 and 2024-11-25; contractions such as
don't, I'm, we'll, they've, she'd, it's and ISN'T; quotes "like this" and 'like that'; URLs such as
https://example.com/path?query=1&b=2#frag; e-mail addresses like someone@example.org; and a
paragraph that simply goes on for a while, because prose is what most prompts are made of. When
the scheduler groups requests that share a system prompt, the prefix is computed once, kept in the
cache and read once per step. Isn't that neat? Yes -- it is; (mostly). Prices: $5, 10%, 3/4, #1.
"""

MULTILINGUAL = [
    "Привет, как дела? Всё хорошо.", "нещо на Български", "你好，世界！今天天气很好。",
    "こんにちは世界、カタカナとひらがな。", "안녕하세요 세계", "مرحبا بالعالم", "नमस्ते दुनिया",
    "สวัสดีชาวโลก", "Γειά σου Κόσμε", "שלום עולם", "Xin chào thế giới, Cửa Việt",
    "Grüß Gott, Äpfel und Öl, straße", "ﬁ ﬂ ligatures and Ⅻ roman", "Ελληνικά και ελληνικά",
    "Türkçe İstanbul ıi", "ქართული ენა", "Հայերեն", "ትግርኛ", "ᚠᛇᚻ runes", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
    "កាន់តែពិសេសអាចខលចេញ", "我想在apple工作1314151天～", "Ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ",
]

EMOJI = ["🦙", "🚀", "😶‍🌫️", "✅", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "❤️", "😁", "🤖", "🫠", "🧑🏿‍💻", "1️⃣", "©️"]

COMBINING = [
    "e\u0301", "a\u0300\u0323", "n\u0303", "o\u0308\u0304", "\u1100\u1161\u11a8",
    "Cafe\u0301 vs Caf\u00e9", "A\u030a vs \u00c5 vs \u212b", "q\u0307\u0323", "\u0915\u094d\u0937",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
]

ODD = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\t\n", "\r\n", "\r\n\r\n", " \n", "\n ",
    "  \t  \n  ", "\u00a0", "a\u00a0b", "\u2028", "\u2029", "\u0085", "\u180e", "\u200b", "\ufeff",
    "\u3000", "\u2003em\u2002en", "\x00", "a\x00b", "\x01\x02\x1f\x7f", "\ufffd", "\ue000\uf8ff",
    "\U0010fffd", "\U0001f600\U0001f600", "\ufe0f", "\u200d", "'s", "'S", "'ll", "'LL", "'ſ",
    "'\u212a", "''", "' era", "''''", "!!!!!!", "...", "?!?!", "3", "33", "333", "3333", "33333",
    "333333", "3333333", "33333333", "333333333", "1234567890", "٣٤٥", "१२३", "Ⅷ", "½ ¾",
    "Hello", " Hello", "  Hello", "   Hello", "    Hello", "    Hello\n    Hello", " (", "\n =",
    "Hello world", " Hello World!", "Hello, world!", " this is 🦙.cpp", "w048 7tuijk dsdfhu",
    "ied 4 ½ months", " discards", "\u2581", "\u2581\u2581x", "▁Hello", "<0x41>", "Ġ", "ĠĠ",
    "a" * 300, "ab" * 150, " " * 64, "\n" * 40, "x" + " " * 17 + "y", "9" * 50, "🦙" * 20,
]

CODE = [
    "def f(x):\n    return x * 2\n", "int main() {\n\treturn 0;\n}\n", "for (int i = 0; i < n; ++i) {}",
    "if (a && b || !c) { x += 1; }", "    // comment with   spaces", "#include <vector>\n",
    "const float* q,  // [T, Hq, D]", "std::vector<int32_t> ids{1, 2, 3};", "x = [1,2,3]\r\n",
    "SELECT * FROM t WHERE a = 'b';", "{\"key\": [1, 2.5, null, true], \"k2\": \"v\"}",
    "<html><body class=\"x\">Hi</body></html>", "$ echo $HOME && ls -la | grep foo",
    "lambda x: x**2 if x>0 else -x", "a->b->c; a::b::c; a..b", "\t\tif x:\n\t\t\tpass\n",
    "fn main() { println!(\"{}\", 42); }", "0x1F 0b1010 1e-9 3.14f 42ULL", "i++; j--; k <<= 2;",
]

SPECIALS = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
            "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|eot_id|>",
            "<think>", "</think>", "<tool_call>", "<|fim_prefix|>", "<|reserved_special_token_7|>",
            "<|im_start", "<|im_end|", "<<|im_end|>>"]

RANGES = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff),
          (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f),
          (0x2100, 0x27bf), (0x3000, 0x30ff), (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0xe000, 0xe0ff),
          (0xfe00, 0xfe0f), (0xff00, 0xffef), (0x1d400, 0x1d7ff), (0x1f300, 0x1faff),
          (0x20000, 0x2a6df), (0xe0000, 0xe007f), (0x0, 0x1f)]


def own_sources(root):
    """Lines of canopy's own C++ sources: code to tokenize, without borrowing anyone else's."""
    out = []
    for sub in ("src/core", "src/attention"):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".h", ".cpp")):
                with open(os.path.join(d, name), encoding="utf-8") as f:
                    out.append(f.read())
    return out


def corpus(root):
    rng = random.Random(SEED)
    cases = []
    cases += ODD + MULTILINGUAL + EMOJI + COMBINING + CODE + SPECIALS
    words = PROSE.split()
    lines = PROSE.splitlines()
    cases += lines
    cases.append(PROSE)
    sources = own_sources(root)
    src_lines = [l for s in sources for l in s.splitlines()]
    # Chunks of real code (multi-line, indentation, comments).
    for s in sources[:12]:
        start = rng.randrange(max(1, len(s) - 600))
        cases.append(s[start:start + rng.randint(50, 600)])
    spaces = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n  ", "\u00a0", "\u3000", ""]
    pieces = [lambda: rng.choice(words),
              lambda: " ".join(rng.choice(words) for _ in range(rng.randint(2, 12))),
              lambda: rng.choice(MULTILINGUAL),
              lambda: rng.choice(EMOJI) * rng.randint(1, 3),
              lambda: rng.choice(COMBINING),
              lambda: rng.choice(CODE),
              lambda: rng.choice(src_lines) if src_lines else "x",
              lambda: str(rng.randint(0, 10 ** rng.randint(1, 15))),
              lambda: "".join(rng.choice("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") for _ in range(rng.randint(1, 6))),
              lambda: rng.choice(spaces) * rng.randint(1, 4),
              lambda: rng.choice(SPECIALS),
              lambda: rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll"]),
              lambda: "".join(chr(rng.randint(*rng.choice(RANGES))) for _ in range(rng.randint(1, 8)))]
    while len(cases) < 1400:
        n = rng.randint(1, 8)
        s = ""
        for _ in range(n):
            s += rng.choice(pieces)()
            if rng.random() < 0.5:
                s += rng.choice(spaces)
        cases.append(s)
    # Pure random code points from many blocks (valid UTF-8, sometimes invalid-looking).
    for _ in range(200):
        s = "".join(chr(rng.randint(*rng.choice(RANGES))) for _ in range(rng.randint(1, 24)))
        cases.append(s)
    # Decomposed forms of the multilingual lines (NFC normalizers must recompose them).
    for s in MULTILINGUAL[:10]:
        cases.append(unicodedata.normalize("NFD", s))
    seen, unique = set(), []
    for c in cases:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


# ---- tokenizers --------------------------------------------------------------------------------

def gpt2_tokenizer(folder):
    import tempfile
    with open(os.path.join(folder, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(folder, "vocab.bpe"), encoding="utf-8") as f:
        merges = [tuple(l.split(" ")) for l in f.read().split("\n")[1:] if l]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok


def gguf_bpe_tokenizer(path, pre):
    """A byte-level BPE tokenizer built from a GGUF file's vocabulary, as its tokenizer.json is."""
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields
    toks = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8") for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    merges = [tuple(bytes(f["tokenizer.ggml.merges"].parts[i]).decode("utf-8").split(" ", 1))
              for i in f["tokenizer.ggml.merges"].data]
    vocab = {t: i for i, t in enumerate(toks)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    assert pre == "smollm"
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(toks[i], special=True, normalized=False)
                            for i in range(len(toks)) if types[i] == 3])
    return tok


def write_sentencepiece_goldens(name, source, model_file, cases, out_dir, add_special_cases=60):
    """Goldens from the `sentencepiece` library, which treats special-token text as plain text
    and whose decode leaves control tokens out (and writes <unk> as " ⁇ ")."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_file)
    rng = random.Random(SEED + len(name))
    header = {"tokenizer": name, "source": source, "cases": len(cases), "parse_special": False,
              "decode_skips_special": True}
    lines = [json.dumps(header, ensure_ascii=False)]
    for k, text in enumerate(cases):
        ids = sp.encode(text)
        rec = {"ids": ids}
        if k < add_special_cases:
            rec["ids_add_special"] = [sp.bos_id()] + ids
        dec = sp.decode(ids)
        if dec != text:
            rec["decoded"] = dec
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    for _ in range(150):
        ids = [rng.randrange(1, 600) if rng.random() < 0.5 else rng.randrange(1, sp.get_piece_size())
               for _ in range(rng.randint(1, 10))]
        d = sp.decode(ids)
        lines.append(json.dumps({"decode_ids": ids, "decoded": d, "decoded_skip_special": d}, ensure_ascii=False,
                                separators=(",", ":")))
    path = os.path.join(out_dir, name + ".jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


def write_goldens(name, source, tok, cases, out_dir, add_special_cases=60):
    rng = random.Random(SEED + len(name))
    path = os.path.join(out_dir, name + ".jsonl")
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    special_ids = sorted(i for t, i in tok.get_vocab(with_added_tokens=True).items()
                         if t in {a.content for a in tok.get_added_tokens_decoder().values() if a.special})
    lines = [json.dumps({"tokenizer": name, "source": source, "cases": len(cases)}, ensure_ascii=False)]
    for k, text in enumerate(cases):
        tok.encode_special_tokens = False
        ids = tok.encode(text, add_special_tokens=False).ids
        rec = {"ids": ids}
        tok.encode_special_tokens = True
        plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        if plain != ids:
            rec["ids_no_special"] = plain
        if k < add_special_cases:
            rec["ids_add_special"] = tok.encode(text, add_special_tokens=True).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        if dec != text:
            rec["decoded"] = dec
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    # Decoding arbitrary ids: partial UTF-8 sequences, byte tokens, special tokens.
    for _ in range(150):
        n = rng.randint(1, 10)
        ids = []
        for _ in range(n):
            r = rng.random()
            if r < 0.15 and special_ids:
                ids.append(rng.choice(special_ids))
            elif r < 0.5:
                ids.append(rng.randrange(min(n_vocab, 600)))  # bytes and short pieces
            else:
                ids.append(rng.randrange(n_vocab))
        lines.append(json.dumps({"decode_ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                 "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)},
                                ensure_ascii=False, separators=(",", ":")))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("CANOPY_SHARED_DIR", os.path.join(root, "..", "shared")))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/canopy/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "tokenizer"))
    args = ap.parse_args()
    tdir = os.path.join(args.shared, "data", "tokenizers")
    cases = corpus(root)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases))
    for name in ("llama3", "qwen3", "mistral"):
        tok = Tokenizer.from_file(os.path.join(tdir, name, "tokenizer.json"))
        write_goldens(name, f"{name}/tokenizer.json", tok, cases, args.out)
    write_goldens("gpt2", "gpt2/encoder.json + gpt2/vocab.bpe", gpt2_tokenizer(os.path.join(tdir, "gpt2")),
                  cases, args.out)
    write_sentencepiece_goldens("llama2_spm", "llama2-spm/tokenizer.model (sentencepiece)",
                                os.path.join(tdir, "llama2-spm", "tokenizer.model"), cases, args.out)
    if os.path.exists(args.model):
        write_goldens("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf (tokenizer.ggml.pre = smollm)",
                      gguf_bpe_tokenizer(args.model, "smollm"), cases, args.out)
    else:
        print(f"skipping smollm2: {args.model} not found (run scripts/fetch_model.sh)", file=sys.stderr)


if __name__ == "__main__":
    main()
