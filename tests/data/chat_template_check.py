"""muse-train's chat templates against transformers, byte for byte.

    python chat_template_check.py CHAT_TEMPLATE_TOOL TEMPLATES_DIR

Every *.jinja in TEMPLATES_DIR (the real templates of the families muse-train
supports) renders a set of conversations, with and without the generation
prompt, through chat_template_tool (C++) and through transformers'
render_jinja_template, the function apply_chat_template calls, with the same
variables. The texts must be identical; where transformers raises (a template's
raise_exception), the tool must report an error with the same message. The
SmolLM2 template is also rendered by apply_chat_template of the real downloaded
tokenizer when it is present. A self-test first shows that an altered expected
text is caught. Exit status 0 when everything agrees.
"""
import json
import os
import pathlib
import subprocess
import sys

import jinja2
from transformers.utils.chat_template_utils import render_jinja_template

SMOLLM2_DIR = pathlib.Path.home() / ".cache/muse-train/smollm2-135m-instruct"
LLAMA_DATE = {"date_string": "26 Jul 2024"}

# Each family's special tokens, as its tokenizer passes them (none: the
# tokenizer has no such token, so the variable is undefined).
TOKENS = [
    ("HuggingFaceTB-SmolLM2", "<|im_start|>", "<|im_end|>"),
    ("Qwen-", None, "<|im_end|>"),
    ("meta-llama-", "<|begin_of_text|>", "<|eot_id|>"),
    ("deepseek-ai-DeepSeek-R1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("mistralai-", "<s>", "</s>"),
    ("Mistral-", "<s>", "</s>"),
]

THINKING = "<think>\nThe user greets me; greet back.\n</think>\n\nHello! How can I help?"
CONVERSATIONS = {
    "one user turn": [{"role": "user", "content": "Hi"}],
    "system and user": [{"role": "system", "content": "You are terse."},
                        {"role": "user", "content": "What is 2+2?"}],
    "multi-turn": [{"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Name a prime."}],
    "system multi-turn": [{"role": "system", "content": "Answer in French."},
                          {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Bonjour !"},
                          {"role": "user", "content": "Thanks"}],
    "ends with assistant": [{"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello."}],
    "awkward text": [{"role": "user", "content": "  Ünïcödé ☃ 日本語 \"dq\" 'sq' \\ {{ x }} {% if %}\n\tend  \n"}],
    "reasoning": [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": THINKING},
                  {"role": "user", "content": "Again"}],
    "reasoning last": [{"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": THINKING}],
    "roles do not alternate": [{"role": "user", "content": "Hi"},
                               {"role": "user", "content": "Hi again"}],
}


def variable_sets(name):
    """The template variables each family is checked with."""
    if name.startswith("meta-llama-Llama-3."):
        return [LLAMA_DATE, {}]  # {}: strftime_now gives today's date on both sides
    if name.startswith("Qwen-Qwen3"):
        return [{"enable_thinking": False}, {"enable_thinking": True}, {}]
    return [{}]


def tokens(name):
    for prefix, bos, eos in TOKENS:
        if name.startswith(prefix):
            return bos, eos
    raise SystemExit(f"no special tokens known for {name}: add its family to TOKENS")


def cases(path):
    bos, eos = tokens(path.name)
    for variables in variable_sets(path.name):
        for title, messages in CONVERSATIONS.items():
            for generation_prompt in (True, False):
                yield {"title": title, "messages": messages, "add_generation_prompt": generation_prompt,
                       "bos_token": bos, "eos_token": eos, "variables": variables}


def expected(template_text, case):
    """transformers' text, or ("error", message) when the template raises."""
    specials = {key: case[key] for key in ("bos_token", "eos_token") if case[key] is not None}
    try:
        rendered, _ = render_jinja_template(
            conversations=[case["messages"]], chat_template=template_text,
            add_generation_prompt=case["add_generation_prompt"], **specials, **case["variables"])
    except jinja2.TemplateError as e:
        return ("error", str(e))
    return rendered[0]


def run_tool(tool, path, cases_):
    requests = "".join(json.dumps({**case, "bos_token": case["bos_token"] or "",
                                   "eos_token": case["eos_token"] or ""}) + "\n" for case in cases_)
    out = subprocess.run([tool, str(path)], input=requests, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def differs(want, got):
    """None when the tool's reply matches transformers' result, else what differs."""
    if isinstance(want, tuple):
        if "error" not in got:
            return f"transformers raised {want[1]!r} but muse-train rendered {got.get('text')!r}"
        if want[1] not in got["error"]:
            return f"transformers raised {want[1]!r}, muse-train: {got['error']!r}"
        return None
    if "error" in got:
        return f"muse-train failed: {got['error']}"
    if got["text"] != want:
        at = next((i for i, (a, b) in enumerate(zip(want, got["text"])) if a != b), min(len(want), len(got["text"])))
        return (f"texts differ at character {at}:\n  transformers: {want[max(0, at - 40):at + 40]!r}\n"
                f"  muse-train:   {got['text'][max(0, at - 40):at + 40]!r}")
    return None


def self_test(tool, path):
    """The comparison must notice a text that differs by one character."""
    case = next(cases(path))
    want = expected(path.read_text(encoding="utf-8"), case)
    got = run_tool(tool, path, [case])[0]
    assert differs(want, got) is None, differs(want, got)
    assert differs(want + "x", got) is not None, "an altered expected text went unnoticed"
    assert differs(want, {"text": got["text"][:-1]}) is not None, "a truncated text went unnoticed"


def check_real_tokenizer(tool, path):
    """apply_chat_template of the downloaded SmolLM2 tokenizer gives the same text."""
    if not (SMOLLM2_DIR / "tokenizer_config.json").exists():
        print(f"skipped: {SMOLLM2_DIR} is missing (scripts/install-deps.sh downloads it)")
        return 0
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2_DIR)
    failures = 0
    for title, messages in CONVERSATIONS.items():
        for generation_prompt in (True, False):
            want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
            case = {"messages": messages, "add_generation_prompt": generation_prompt,
                    "bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token, "variables": {}}
            problem = differs(want, run_tool(tool, path, [case])[0])
            if problem:
                failures += 1
                print(f"MISMATCH {path.name} via AutoTokenizer [{title}, generation prompt {generation_prompt}]: "
                      f"{problem}")
    return failures


def main():
    tool, templates = sys.argv[1], pathlib.Path(sys.argv[2])
    paths = sorted(templates.glob("*.jinja"))
    assert paths, f"no templates in {templates}"
    self_test(tool, paths[0])
    failures = total = 0
    for path in paths:
        template_text = path.read_text(encoding="utf-8")
        all_cases = list(cases(path))
        replies = run_tool(tool, path, all_cases)
        assert len(replies) == len(all_cases), f"{path.name}: {len(replies)} replies for {len(all_cases)} requests"
        for case, got in zip(all_cases, replies):
            total += 1
            problem = differs(expected(template_text, case), got)
            if problem:
                failures += 1
                print(f"MISMATCH {path.name} [{case['title']}, generation prompt {case['add_generation_prompt']}, "
                      f"variables {case['variables']}]: {problem}")
        if path.name.startswith("HuggingFaceTB-SmolLM2"):
            failures += check_real_tokenizer(tool, path)
    print(f"{total} renderings of {len(paths)} templates compared, {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    sys.exit(main())
