#!/usr/bin/env python3
"""Renders every template in the template folders with every case in
cases.json using Python Jinja2 configured as Hugging Face transformers'
apply_chat_template does (trim_blocks, lstrip_blocks, loop controls, its
tojson, raise_exception and strftime_now), and writes golden/<template>.<case>.txt
(or .err when the template raises). The Go tests compare the chat package's
engine against these files. Run: python3 gen_golden.py [SHARED_TEMPLATES_DIR]"""
import datetime, glob, json, os, sys
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2026, 3, 14, 15, 9, 26)  # the fixed clock of the Go tests

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)

def strftime_now(fmt):
    return NOW.strftime(fmt)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "testdata", "chat-templates")
paths = sorted(glob.glob(os.path.join(shared, "*.jinja")) + glob.glob(os.path.join(HERE, "templates", "*.jinja")))
cases = json.load(open(os.path.join(HERE, "cases.json")))
out = os.path.join(HERE, "golden")
for p in paths:
    name = os.path.basename(p)[:-len(".jinja")]
    t = env.from_string(open(p).read())
    for c in cases:
        kw = dict(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"],
                  bos_token="<BOS>", eos_token="<EOS>")
        if "tools" in c:
            kw["tools"] = c["tools"]
        kw.update(c.get("extra", {}))
        base = os.path.join(out, name + "." + c["name"])
        for ext in (".txt", ".err"):
            if os.path.exists(base + ext):
                os.remove(base + ext)
        try:
            s = t.render(**kw)
            open(base + ".txt", "w").write(s)
        except Exception as e:
            open(base + ".err", "w").write(type(e).__name__ + ": " + str(e) + "\n")
print("rendered", len(paths), "templates x", len(cases), "cases")
