#!/usr/bin/env python3
"""Golden outputs for canopy's chat template interpreter, rendered by jinja2 exactly as Hugging Face
transformers sets it up (ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols,
HF's tojson / raise_exception / strftime_now / namespace / dict).

Writes two compact JSON files under tests/data/template/:

  chat_templates.json  real chat templates (the .jinja files and tokenizer_config.json templates in
                       ../shared/data/tokenizers, and SmolLM2's GGUF template) rendered on a set of
                       conversations, with and without add_generation_prompt; a template that
                       rejects a conversation records its raise_exception message instead.
  jinja_features.json  small templates, one Jinja feature each (whitespace control, scoping,
                       filters, tests, methods, printing of Python values, errors), rendered with a
                       fixed context.

canopy's tests (tests/template/) render the same inputs and compare byte for byte. Run with the
project's venv (jinja2 and transformers):

    /work/venv/bin/python tools/make_chat_template_goldens.py
"""

import datetime as _dt
import functools
import json
import os
import sys

import jinja2
import transformers
import transformers.utils.chat_template_utils as hf_chat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CANOPY_SHARED_DIR") or os.path.normpath(os.path.join(ROOT, "..", "shared"))
OUT_DIR = os.path.join(ROOT, "tests", "data", "template")

# strftime_now reads datetime.now(): fix it so that the goldens do not depend on the day they are
# made. canopy's tests fix the same time through ChatRenderOptions::now.
FIXED_NOW = _dt.datetime(2024, 7, 26, 14, 5, 9)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


hf_chat.datetime = _FixedDatetime

# SmolLM2-135M-Instruct's template, as stored in its GGUF file (tokenizer.chat_template); the tests
# also check that ChatTemplate::for_model reads the same text from the file when it is present.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Special tokens each template is rendered with (those of the model family it comes from).
TEMPLATES = {
    "smollm3": ("file", "data/tokenizers/chat-templates/HuggingFaceTB-SmolLM3-3B.jinja",
                {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}),
    "qwen2.5": ("file", "data/tokenizers/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja",
                {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "qwen3-0.6b": ("file", "data/tokenizers/chat-templates/Qwen-Qwen3-0.6B.jinja",
                   {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "deepseek-r1-distill-llama": ("file", "data/tokenizers/chat-templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
                                  {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}),
    "gemma-2": ("file", "data/tokenizers/chat-templates/google-gemma-2-2b-it.jinja",
                {"bos_token": "<bos>", "eos_token": "<eos>"}),
    "granite-3.3": ("file", "data/tokenizers/chat-templates/ibm-granite-granite-3.3-2B-Instruct.jinja",
                    {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>"}),
    "llama-3.1": ("file", "data/tokenizers/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja",
                  {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "llama-3.2": ("file", "data/tokenizers/chat-templates/meta-llama-Llama-3.2-3B-Instruct.jinja",
                  {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "phi-3.5": ("file", "data/tokenizers/chat-templates/microsoft-Phi-3.5-mini-instruct.jinja",
                {"bos_token": "<s>", "eos_token": "<|endoftext|>"}),
    "mistral-nemo": ("file", "data/tokenizers/chat-templates/mistralai-Mistral-Nemo-Instruct-2407.jinja",
                     {"bos_token": "<s>", "eos_token": "</s>"}),
    "smollm2-gguf": ("source", SMOLLM2_TEMPLATE, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}),
    # Templates in tokenizer_config.json files: rendered through AutoTokenizer.apply_chat_template,
    # and in canopy through ChatTemplate::for_model(folder), special tokens included.
    "llama3-folder": ("folder", "data/tokenizers/llama3", None),
    "qwen3-folder": ("folder", "data/tokenizers/qwen3", None),
    # Templates in GGUF metadata (tokenizer.chat_template), with the special tokens named by the
    # vocabulary's ids; canopy reads them with ChatTemplate::for_model(file).
    "phi-3-gguf": ("gguf", "data/tokenizers/ggml-vocab/ggml-vocab-phi-3.gguf", None),
    "qwen2-gguf": ("gguf", "data/tokenizers/ggml-vocab/ggml-vocab-qwen2.gguf", None),
}

GGUF_SPECIAL_TOKENS = {
    "tokenizer.ggml.bos_token_id": "bos_token",
    "tokenizer.ggml.eos_token_id": "eos_token",
    "tokenizer.ggml.unknown_token_id": "unk_token",
    "tokenizer.ggml.padding_token_id": "pad_token",
    "tokenizer.ggml.seperator_token_id": "sep_token",
}


@functools.lru_cache(maxsize=None)
def read_gguf_template(path):
    """tokenizer.chat_template and the special token strings of a GGUF file."""
    import gguf
    reader = gguf.GGUFReader(path)

    def field_value(key):
        f = reader.fields.get(key)
        if f is None:
            return None
        return f.parts[f.data[0]]

    source = bytes(field_value("tokenizer.chat_template")).decode("utf-8")
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(tokens_field.parts[i]).decode("utf-8") for i in tokens_field.data]
    special = {}
    for key, name in GGUF_SPECIAL_TOKENS.items():
        v = field_value(key)
        if v is not None:
            special[name] = tokens[int(v[0])]
    return source, special

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "And another one?"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Again."},
        {"role": "assistant", "content": "Hi again!"},
    ],
    "empty_system": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Is the system prompt empty?"},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français. 日本語も話せます。"},
        {"role": "user", "content": "\u3000Ça va ? 🙂👍🏽 — «quote» 中文字符 עברית\u00a0"},
        {"role": "assistant", "content": "Très bien ! 🎉 ∑ x² ≤ ∞"},
        {"role": "user", "content": "Emoji ZWJ: 👩‍💻 and combining: é (e\u0301)"},
    ],
    "whitespace": [
        {"role": "system", "content": "\n  System prompt with padding.  \n"},
        {"role": "user", "content": "\n\n  Line one\n\tLine two with a tab  \n\n"},
        {"role": "assistant", "content": "   spaced answer\r\n  "},
        {"role": "user", "content": " \t "},
    ],
    "template_syntax_in_content": [
        {"role": "user", "content": "Render {{ 7*7 }} and {% if true %}x{% endif %} {# c #} literally; "
                                    "quotes ' \" and a backslash \\ too."},
    ],
    "not_alternating": [
        {"role": "user", "content": "First."},
        {"role": "user", "content": "Second, without an answer between."},
    ],
    "assistant_first": [
        {"role": "assistant", "content": "I speak first."},
        {"role": "user", "content": "Fine."},
    ],
    "system_only": [{"role": "system", "content": "Only a system message."}],
    "reasoning": [
        {"role": "user", "content": "What is 3*3?"},
        {"role": "assistant", "content": "<think>\n3 times 3 is 9.\n</think>\n\nIt is 9."},
        {"role": "user", "content": "And 4*4?"},
        {"role": "assistant", "content": "16", "reasoning_content": "Four fours are sixteen."},
    ],
    "tool_calls": {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "What's the weather in Zürich?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call12345", "type": "function",
                 "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
            {"role": "tool", "tool_call_id": "call12345", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "It is 21 °C and clear in Zürich."},
            {"role": "user", "content": "Thanks!"},
        ],
    },
    "assistant_prefix": [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Soft rain on the roof,  "},
    ],
    "assistant_prefix_parts": [
        {"role": "user", "content": "Continue the list."},
        {"role": "assistant", "content": [{"type": "text", "text": "1. apples\n"}, {"type": "text", "text": "2. pears"}]},
    ],
    # The same exchange with content "" and JSON-string arguments, the shape most templates expect.
    "tool_calls_string_arguments": {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "callA0001", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
                {"id": "callB0002", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "callA0001", "content": "4 °C"},
            {"role": "tool", "tool_call_id": "callB0002", "content": "19 °C"},
        ],
    },
}

# Conversations ending with an assistant message to continue (continue_final_message).
CONTINUE_CONVERSATIONS = ["ends_with_assistant", "assistant_prefix", "assistant_prefix_parts"]

# Extra variables some templates read, rendered as additional cases.
VARIANTS = {
    "qwen3-0.6b": [{"enable_thinking": False}],
    "qwen3-folder": [{"enable_thinking": False}],
    "smollm3": [{"enable_thinking": False}],
    "llama-3.1": [{"date_string": "01 Jan 2025"}],
    "granite-3.3": [{"thinking": True}, {"controls": {"citations": True, "length": "short"}}],
}


def load_source(kind, ref):
    if kind == "file":
        with open(os.path.join(SHARED, ref), encoding="utf-8") as f:
            return f.read()
    return ref


def render_with_hf_env(source, messages, tools, add_generation_prompt, variables, continue_final=False):
    """What apply_chat_template(tokenize=False) does after it has picked the template."""
    chat = hf_chat._normalize_chat_messages(messages)
    rendered, _ = hf_chat.render_jinja_template(
        conversations=[chat], tools=tools, documents=None, chat_template=source,
        add_generation_prompt=add_generation_prompt, continue_final_message=continue_final, **variables)
    return rendered[0]


_tokenizers = {}


def render_with_tokenizer(folder, messages, tools, add_generation_prompt, variables, continue_final=False):
    if folder not in _tokenizers:
        _tokenizers[folder] = transformers.AutoTokenizer.from_pretrained(os.path.join(SHARED, folder))
    return _tokenizers[folder].apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final, **variables)


def outcome(render):
    try:
        return {"output": render()}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception() raises TemplateError itself; its subclasses are jinja2's own failures.
        if type(e) is jinja2.exceptions.TemplateError:
            return {"raised": str(e)}
        return {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # TypeError and friends from Python operations inside the template
        return {"error": f"{type(e).__name__}: {e}"}


def make_chat_templates():
    templates = {}
    for name, (kind, ref, tokens) in TEMPLATES.items():
        entry = {"kind": kind}
        if kind == "folder":
            entry["folder"] = ref
        elif kind == "gguf":
            entry["gguf"] = ref
            entry["special_tokens"] = read_gguf_template(os.path.join(SHARED, ref))[1]
        elif kind == "file":
            entry["file"] = ref
        else:
            entry["source"] = ref
        if tokens is not None:
            entry["special_tokens"] = tokens
        templates[name] = entry

    conversations = {}
    for cname, conv in CONVERSATIONS.items():
        if isinstance(conv, dict):
            conversations[cname] = conv
        else:
            conversations[cname] = {"messages": conv}

    def render(name, messages, tools, agp, variables, continue_final):
        kind, ref, tokens = TEMPLATES[name]
        if kind == "folder":
            return outcome(lambda: render_with_tokenizer(ref, messages, tools, agp, variables, continue_final))
        if kind == "gguf":
            source, special = read_gguf_template(os.path.join(SHARED, ref))
            return outcome(lambda: render_with_hf_env(
                source, messages, tools, agp, {**special, **variables}, continue_final))
        source = load_source(kind, ref)
        return outcome(lambda: render_with_hf_env(
            source, messages, tools, agp, {**tokens, **variables}, continue_final))

    cases = []
    for name in TEMPLATES:
        for variables in [{}] + VARIANTS.get(name, []):
            for cname, conv in conversations.items():
                for agp in (True, False):
                    case = {"template": name, "conversation": cname, "add_generation_prompt": agp}
                    if variables:
                        case["variables"] = variables
                    case.update(render(name, conv["messages"], conv.get("tools"), agp, variables, False))
                    cases.append(case)
        # continue_final_message: the prompt stops right after the final message's text, so that
        # the model continues it (add_generation_prompt off, as Hugging Face requires).
        for cname in CONTINUE_CONVERSATIONS:
            conv = conversations[cname]
            case = {"template": name, "conversation": cname, "add_generation_prompt": False,
                    "continue_final_message": True}
            case.update(render(name, conv["messages"], conv.get("tools"), False, {}, True))
            cases.append(case)
    return {
        "generator": "tools/make_chat_template_goldens.py",
        "jinja2": jinja2.__version__,
        "transformers": transformers.__version__,
        "now": FIXED_NOW.isoformat(),
        "templates": templates,
        "conversations": conversations,
        "cases": cases,
    }


# ---- one feature per template ----------------------------------------------------------------

FEATURE_CONTEXT = {
    "x": [1, 2, 3],
    "d": {"a": 1, "b": [1, 2], "c": {"deep": "yes"}},
    "s": "héllo wörld",
    "n": 7,
    "f": 2.5,
    "t": True,
    "nothing": None,
    "empty": "",
    "words": ["banana", "Apple", "cherry", "apple"],
    "people": [{"name": "Ann", "age": 31, "tags": ["a"]}, {"name": "bob", "age": 25},
               {"name": "Cid", "age": 31, "active": True}],
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                 {"role": "assistant", "content": "hello"}],
}

FEATURES = [
    # whitespace control, trim_blocks, lstrip_blocks
    "a\n{% if true %}\nb\n{% endif %}\nc",
    "a\n    {% if true %}\n    b\n    {% endif %}\nc",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "a\n  {{- 'b' -}}  \nc",
    "a\n  {%+ if true %}b{% endif +%}\nc",
    "x {# comment #}\ny\n  {# indented comment #}\nz",
    "{#- strip -#}  \n  a",
    "{% raw %}{{ not evaluated }}{% endraw %}\n{%- raw -%}  {% if %} {%- endraw %}",
    "line1\r\nline2\rline3\n",
    "trailing newline\n\n",
    "  {{ 'var' }}  {% if true %}  {% endif %}x",
    "{% for i in x %}\n  {{ i }}\n{% endfor %}",
    "{% for i in x -%}\n  {{ i }}\n{%- endfor %}",
    "\u3000 {%- if true %}ideographic space stripped{% endif %}",
    # literals and printing
    "{{ 'a' 'b' }}|{{ \"x\\ty\\u00e9\\x41\\101\\q\" }}|{{ 1_000 }}|{{ 0x1f }}|{{ 0o17 }}|{{ 0b101 }}|{{ 1e3 }}|{{ 1.5E-3 }}",
    "{{ 1/2 }}|{{ 7//2 }}|{{ -7//2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2**10 }}|{{ 2**-1 }}|{{ 2 ** 3 ** 2 }}",
    "{{ 1e16 }}|{{ 1e15 }}|{{ 0.1+0.2 }}|{{ 1.5e-5 }}|{{ 0.0001 }}|{{ 3.0 }}|{{ 10/5 }}|{{ -0.0 }}|{{ 1e300*1e300 }}|{{ 123456789.125 }}",
    "{{ 7.5 // 2 }}|{{ -7.5 % 2 }}|{{ 7 / 2 * 2 }}|{{ 1 - 2 - 3 }}|{{ -x[0] }}|{{ +n }}",
    "{{ d }}|{{ x }}|{{ (1, 'a') }}|{{ (1,) }}|{{ () }}|{{ \"it's\" }}|{{ ['a\"b', \"c'd\", 'e\\'f\"'] }}|{{ none }}|{{ true }}|{{ [none, true, 1.0] }}",
    "{{ d.items() }}|{{ d.keys() }}|{{ d.values() }}|{{ ['\\n', '\\t', '\\x01', '\\u200b', 'é', '\\u3000'] }}",
    "{{ 'x' ~ 1 ~ none ~ [1] ~ 2.0 }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 'ab' * 3 }}|{{ [1] * 3 }}|{{ 1 + true }}",
    "{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ nothing and 1 }}|{{ not nothing }}|{{ [] or {} }}|{{ '' or 0 }}",
    "{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 'a' ~ 'b' == 'ab' }}|{{ 'abc' < 'abd' }}|{{ [1,2] < [1,3] }}|{{ 1 == 1.0 }}|{{ true == 1 }}",
    "{{ 'a' in 'cat' }}|{{ 1 in x }}|{{ 'a' in d }}|{{ 'x' not in d }}|{{ 1 in (1, 2) }}|{{ 'z' in undefined_thing }}",
    "{{ 3 if t else 4 }}|{{ 3 if not t else 4 }}|{{ 3 if false }}|{{ (3 if false) is defined }}",
    # undefined
    "{{ u }}|{{ u is defined }}|{{ u is undefined }}|{{ u == none }}|{{ u | length }}|{{ u ~ 'a' }}|{{ u | default('dflt') }}|{{ u is iterable }}",
    "{% for i in u %}never{% else %}empty{% endfor %}|{{ u|list }}|{{ u|join(',') }}|{{ u|string }}|{{ u|trim }}|{{ not u }}",
    "{{ d.missing }}|{{ d['missing'] }}|{{ x[10] }}|{{ d.missing is defined }}|{{ messages[5] is defined }}",
    "{{ u.attr }}",
    "{{ u + 'a' }}",
    "{{ d.missing.deeper }}",
    "{{ u() }}",
    "{{ u < 1 }}",
    # indexing, slicing, attributes
    "{{ x[1:] }}|{{ x[::-1] }}|{{ x[-2:] }}|{{ x[:-1] }}|{{ x[1:2:1] }}|{{ x[5:] }}|{{ s[1:3] }}|{{ s[::-1] }}|{{ s[-1] }}|{{ s[1] }}",
    "{{ x.0 }}|{{ d['c']['deep'] }}|{{ d.c.deep }}|{{ messages[0].role }}|{{ messages[-1]['content'] }}|{{ (x|list)[0] }}",
    "{{ d.get('a') }}|{{ d.get('z', 'dflt') }}|{{ d.get('z') }}|{{ d['items'] is defined }}|{{ d.pop is defined }}",
    "{{ x.append(4) }}",
    "{{ x[0:1:0] }}",
    # statements and scoping
    "{% set y = 0 %}{% for i in range(3) %}{{ y }}{% set y = y + 1 %}{{ y }}{% endfor %}{{ y }}",
    "{% for i in range(3) %}{% if i == 1 %}{% set z = 5 %}{% endif %}{{ z }},{% endfor %}{{ z }}",
    "{% if true %}{% set z = 3 %}{% endif %}{{ z }}",
    "{% set ns = namespace(total=0, seen=[]) %}{% for i in x %}{% set ns.total = ns.total + i %}{% set ns.seen = ns.seen + [i] %}{% endfor %}{{ ns.total }}|{{ ns.seen }}|{{ ns }}",
    "{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}|{{ ns.b }}|{{ ns['a'] }}",
    "{% set ns = namespace(_private=1) %}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t2 = 1, %}{{ t2 }}|{% set (p, q) = 'xy' %}{{ q }}{{ p }}",
    "{% for a, b in [[1,2],[3,4]] %}{{ a }}{{ b }}{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for c in s %}{{ c }}.{% endfor %}",
    "{% for a, b in [[1,2,3]] %}{% endfor %}",
    "{% for i in x if i > 1 %}{{ loop.index }}/{{ loop.length }}:{{ i }} {% else %}none{% endfor %}|{% for i in [] %}x{% else %}empty{% endfor %}",
    "{% for i in x %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a','b') }}{{ loop.depth }} {% endfor %}",
    "{% for a in [1,2] %}{% for b in [3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}{{ loop }}",
    "{% for i in x %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% if i == 3 %}{% break %}{% endif %}{% endfor %}|{% for i in range(10) %}{% if i > 2 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% macro m(a, b=2) %}{{ a }}-{{ b }}-{{ varargs }}-{{ kwargs }}{% endmacro %}{{ m() }}|{{ m(1,2,3) }}|{{ m(1, c=5) }}|{{ m(b=9, a=8) }}",
    "{% macro m() %}{{ g }}{% endmacro %}{% set g = 2 %}{{ m() }}|{% for g in [7] %}{{ m() }}{% endfor %}",
    "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(10) }}",
    "{% macro render(v) %}{% if v is mapping %}{ {% for k, w in v.items() %}{{ k }}: {{ render(w) }}{% if not loop.last %}, {% endif %}{% endfor %} }{% else %}{{ v }}{% endif %}{% endmacro %}{{ render(d) }}",
    "{% for i in x %}{% macro m(p='') %}{{ p }}{{ i }}{{ loop.index }}{% endmacro %}{{ m() }}{{ m('-') }}{% endfor %}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, c=2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }}",
    "{% filter upper %}abc{{ s }}{% endfilter %}|{% set v %}  inner {{ s }} {% endset %}[{{ v }}]|{% set w | trim | upper %}  inner {% endset %}[{{ w }}]",
    "{% for i in x %}{% set v %}<{{ i }}{% if i == 2 %}{% break %}{% endif %}>{% endset %}{{ v }}{% endfor %}",
    "{%- for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}{{ ',' if not loop.last }}{% endfor %}",
    "{% set ns = namespace(items=[]) %}{% for m in messages %}{% set ns.items = ns.items + [{'i': loop.index, 'r': m.role[:1]}] %}{% endfor %}{{ ns.items|tojson }}",
    "\t{% if true %}tab-indented tag{% endif %}\n\t\t{% if true %}\n x{% endif %}",
    "a {#- c -#}\n\n b {#+ keep +#}\n c",
    "\n\n{{- '' -}}\n\nx\n\n{{- '' -}}\n\n",
    "{{ '\\n' }}|{{ \"tab\\there\" }}|{{ '%s'|format(none) }}|{{ messages[0]['content'] is string and messages[0]['content'].strip() }}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}",
    "{% generation %}generated {{ n }}{% endgeneration %}",
    "{% print 'printed', n %}",
    # filters
    "{{ '  hé  '|trim }}|{{ '\\u3000x\\xa0'|trim }}|{{ 'xxhixx'|trim('x') }}|{{ ' a b '|length }}|{{ 'Hello World'|upper }}|{{ 'HeLLo'|lower }}",
    "{{ 'hello world-wide (test) [x] <y>'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ s|upper }}|{{ 'ÀÉÎ'|lower }}",
    "{{ x|join(', ') }}|{{ x|first }}|{{ x|last }}|{{ x|sum }}|{{ x|reverse|list }}|{{ x|max }}|{{ x|min }}|{{ x|length }}|{{ x|count }}",
    "{{ words|sort }}|{{ words|sort(case_sensitive=true) }}|{{ words|sort(reverse=true) }}|{{ words|unique|list }}|{{ words|max }}|{{ words|min(case_sensitive=true) }}",
    "{{ people|sort(attribute='age')|map(attribute='name')|join(',') }}|{{ people|sort(attribute='age,name')|map(attribute='name')|join(',') }}|{{ people|map(attribute='tags.0', default='-')|list }}",
    "{{ people|selectattr('active')|list }}|{{ people|selectattr('age', 'equalto', 31)|map(attribute='name')|list }}|{{ people|rejectattr('age', '>', 30)|map(attribute='name')|list }}",
    "{{ x|select('odd')|list }}|{{ x|reject('odd')|list }}|{{ x|select('>', 1)|list }}|{{ ['a','bb']|map('length')|list }}|{{ [1,'2']|map('int')|sum }}|{{ ['a', '', none]|select|list }}",
    "{{ {'b':1,'a':2}|dictsort }}|{{ {'b':1,'A':2}|dictsort(true) }}|{{ {'b':1,'a':2}|dictsort(by='value', reverse=true) }}|{{ d|items|list }}|{{ d|list }}",
    "{{ '42'|int }}|{{ '4.7'|int }}|{{ 'x'|int }}|{{ 'x'|int(-1) }}|{{ 4.7|int }}|{{ '0x1A'|int(0, 16) }}|{{ ' 12 '|int }}|{{ '1_000'|int }}|{{ true|int }}",
    "{{ '3.5'|float }}|{{ 'x'|float }}|{{ 7|float }}|{{ ' 1e3 '|float }}|{{ 2.5|round }}|{{ 3.5|round }}|{{ 3.14159|round(2) }}|{{ -2.5|round }}|{{ 2.675|round(2) }}|{{ 7|round }}|{{ 42.55|round(1, 'floor') }}|{{ 42.51|round(0, 'ceil') }}",
    "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='>', blank=true) }}|{{ 'one'|indent }}",
    "{{ x|tojson }}|{{ d|tojson }}|{{ {'é': 'ü\\n\"<>&\\''}|tojson }}|{{ d|tojson(indent=2) }}|{{ [1.0, none, true, 'x']|tojson }}|{{ {}|tojson(indent=2) }}|{{ []|tojson(indent=2) }}",
    "{{ d|tojson(sort_keys=true) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true, indent=1) }}|{{ {'é': 1}|tojson(ensure_ascii=true) }}|{{ '😀'|tojson(ensure_ascii=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ {1: 2, none: 3, true: 4}|tojson }}",
    "{{ u|tojson }}",
    "{{ [1,2]|string }}|{{ 3|string }}|{{ none|string }}|{{ nothing|default('dd') }}|{{ ''|default('dd', true) }}|{{ u|d('short') }}",
    "{{ 'aaaaargh'|replace('a', \"d'oh, \", 2) }}|{{ 'abc'|replace('', '-') }}|{{ 'hello'|reverse }}|{{ 'x'|center(5) }}|{{ 'ab'|center(7) }}|{{ -3|abs }}|{{ -2.5|abs }}",
    "{{ x|batch(2)|list }}|{{ x|batch(2, 0)|list }}|{{ 'hello world, foo_bar 42'|wordcount }}|{{ '<b>&\"'|e }}|{{ '<b>'|safe }}|{{ d|attr('a') }}|{{ d|attr('items') is defined }}",
    "{{ '%s-%d-%r-%.2f-%5s|%-4d|%x|%05d|%+d|%c|%%' % ('a', 3, 'q', 2.345, 'r', 7, 255, 42, 5, 65) }}|{{ '%s, %s!'|format('Hi', 'you') }}|{{ '%(a)s=%(b)d'|format(a='k', b=2) }}|{{ '%s' % x }}",
    "{{ x|nosuchfilter }}",
    "{% if false %}{{ x|nosuchfilter }}{% endif %}ok",
    # tests
    "{{ 1 is number }}|{{ true is number }}|{{ true is integer }}|{{ 1 is integer }}|{{ 1.0 is float }}|{{ nothing is none }}|{{ s is string }}|{{ d is mapping }}|{{ x is sequence }}|{{ d is sequence }}|{{ 3 is iterable }}",
    "{{ 3 is odd }}|{{ 4 is even }}|{{ 10 is divisibleby 5 }}|{{ 10 is divisibleby(3) }}|{{ 'a' is in 'abc' }}|{{ 2 is in x }}|{{ x is not none }}|{{ s is lower }}|{{ 'ABC' is upper }}|{{ t is true }}|{{ t is boolean }}|{{ 0 is false }}",
    "{{ 1 is eq 1 }}|{{ 1 is ne 2 }}|{{ 1 is lt 2 }}|{{ 2 is le 2 }}|{{ 3 is gt 2 }}|{{ 3 is ge 4 }}|{{ 2 is equalto 2 }}|{{ 2 is greaterthan 1 }}|{{ nothing is sameas none }}|{{ t is sameas true }}|{{ range is callable }}|{{ 'upper' is filter }}|{{ 'odd' is test }}|{{ 'nope' is filter }}",
    "{% if x is nosuchtest %}{% endif %}",
    # string methods
    "{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ ' a  b '.rsplit(None, 1) }}|{{ 'l1\\nl2\\r\\nl3'.splitlines() }}",
    "{{ 'abc'.replace('', '-') }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'xxhixx'.strip('x') }}|{{ '  hi  '.lstrip() }}|{{ '  hi  '.rstrip() }}|{{ '\\n\\nx\\n'.strip('\\n') }}",
    "{{ 'abc'.startswith(('x','a')) }}|{{ 'abc'.endswith('bc') }}|{{ 'abc'.startswith('b', 1) }}|{{ s.find('l') }}|{{ s.rfind('l') }}|{{ s.find('z') }}|{{ 'banana'.count('an') }}|{{ s.find('l', 4) }}",
    "{{ s.upper() }}|{{ s.title() }}|{{ 'hello WORLD'.capitalize() }}|{{ 'Hello'.swapcase() }}|{{ 'ab'.center(6,'*') }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}|{{ '42'.zfill(5) }}|{{ '-42'.zfill(5) }}",
    "{{ ' x '.isspace() }}|{{ ' '.isspace() }}|{{ '123'.isdigit() }}|{{ 'abc'.isalpha() }}|{{ 'a1'.isalnum() }}|{{ 'abc'.islower() }}|{{ 'ABC'.isupper() }}|{{ ''.isdigit() }}",
    "{{ ', '.join(['a', 'b']) }}|{{ 'a=b=c'.partition('=') }}|{{ 'a=b=c'.rpartition('=') }}|{{ 'prefix-body'.removeprefix('prefix-') }}|{{ 'body.txt'.removesuffix('.txt') }}",
    "{{ '{} {:>4} {name}'.format(1, 2, name='n') }}|{{ '{0}{1}{0}'.format('a', 'b') }}|{{ '{:.2f}|{:5d}|{:<5}|{:^7}|{:x}|{!r}'.format(3.14159, 42, 'ab', 'mid', 255, 'q') }}|{{ '{{}}'.format() }}",
    "{{ x.index(2) }}|{{ x.count(2) }}|{{ (1, 2, 1).count(1) }}|{{ 'banana'.index('an') }}|{{ 'banana'.rindex('an') }}|{{ 'héllo'.index('l', 3) }}",
    "{{ 'abc'.index('z') }}",
    "{{ ', '.join([1, 2]) }}",
    # globals
    "{{ range(3)|list }}|{{ range(1, 10, 3)|list }}|{{ range(5, 0, -2)|list }}|{{ range(0)|list }}",
    "{{ range(100001)|length }}",
    "{{ dict(a=1, b=2) }}|{{ dict({'z': 1}, y=2) }}|{{ namespace(a=1).a }}|{{ namespace({'z': 1}, y=2).z }}",
    "{% set j = joiner('|') %}{% for i in x %}{{ j() }}{{ i }}{% endfor %}",
    "{{ raise_exception('Custom failure: ' ~ n) }}",
    "{{ strftime_now('%Y-%m-%d %H:%M:%S|%d %b %Y|%B %d, %Y|%A|%j') }}",
    # errors
    "{{ 'a' + 1 }}",
    "{{ 1 + 'a' }}",
    "{{ 1 < 'a' }}",
    "{{ 1 / 0 }}",
    "{{ 5 // 0 }}",
    "{{ none.attr }}",
    "{{ 'x'() }}",
    "{% for i in 3 %}{% endfor %}",
    "{{ 1 + }}",
    "{% if true %}unclosed",
    "{% for i in x %}{% endif %}",
    "{% endfor %}",
    "{% break %}",
    "{{ 'unterminated }}",
    "{# unclosed comment",
    "{% include 'other.jinja' %}",
    "{% nosuchtag %}",
    "{{ x[ }}",
    "{{ (1 }}",
    "{{ ) }}",
]


def float_reprs():
    """repr() of doubles of every magnitude, for canopy's float printing (Python's shortest repr)."""
    import random
    import struct
    rng = random.Random(20261125)
    values = [0.0, -0.0, 1.0, 0.1, 1 / 3, 2 / 3, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 123456.789e10,
              5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.5, 100.0, 1e22, 1.5e300]
    for _ in range(300):
        values.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
    for _ in range(100):
        values.append(rng.uniform(-1e6, 1e6))
        values.append(round(rng.uniform(-1000, 1000), rng.randint(0, 6)))
    out = []
    for v in values:
        if v != v or v in (float("inf"), float("-inf")):
            continue
        out.append([struct.unpack("<Q", struct.pack("<d", v))[0], repr(v)])
    return out


def make_features():
    cases = []
    for source in FEATURES:
        def render():
            return hf_chat._compile_jinja_template(source).render(**FEATURE_CONTEXT)
        case = {"source": source}
        case.update(outcome(render))
        cases.append(case)
    return {
        "generator": "tools/make_chat_template_goldens.py",
        "jinja2": jinja2.__version__,
        "transformers": transformers.__version__,
        "now": FIXED_NOW.isoformat(),
        "context": FEATURE_CONTEXT,
        "cases": cases,
        "float_reprs": float_reprs(),
    }


def write(name, data):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes, {len(data['cases'])} cases)")


def main():
    if not os.path.isdir(SHARED):
        sys.exit(f"shared data not found at {SHARED}")
    write("chat_templates.json", make_chat_templates())
    write("jinja_features.json", make_features())


if __name__ == "__main__":
    main()
