#!/usr/bin/env python3
"""The inputs and outputs tables of each module's README, made from its variables and outputs
(between <!-- inputs --> / <!-- outputs --> markers). `--write` rewrites them; without it, exit 1
when a README is out of date (run by infra/tests/run)."""

import os
import pathlib
import re
import sys

import hcl2

INFRA = pathlib.Path(os.environ.get("INFRA_DIR") or pathlib.Path(__file__).resolve().parents[1])


def unquote(value):
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def blocks(module, kind):
    out = {}
    for path in sorted((INFRA / module).glob("*.tf")):
        with path.open() as f:
            for block in hcl2.load(f).get(kind, []):
                for name, body in block.items():
                    out[unquote(name)] = body
    return out


def cell(value):
    text = unquote(value) if isinstance(value, str) else value
    text = str(text).replace("${", "").replace("}", "") if isinstance(text, str) and text.startswith("${") else str(text)
    return text.replace("|", "\\|").replace("\n", " ")


def tables(module):
    inputs = ["| Name | Type | Default | Description |", "|---|---|---|---|"]
    for name, body in blocks(module, "variable").items():
        default = "required" if "default" not in body else f"`{cell(body['default'])}`"
        kind = cell(body.get("type", "")).replace("\\|", "|")
        inputs.append(f"| `{name}` | `{kind}` | {default} | {cell(body.get('description', ''))} |")
    outputs = ["| Name | Description |", "|---|---|"]
    for name, body in blocks(module, "output").items():
        outputs.append(f"| `{name}` | {cell(body.get('description', ''))} |")
    return "\n".join(inputs), "\n".join(outputs)


def render(text, marker, table):
    pattern = re.compile(rf"(<!-- {marker} -->\n)(?:.*?\n)?(<!-- /{marker} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no <!-- {marker} --> section")
    return pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)


def main():
    write = "--write" in sys.argv
    stale = []
    for module in ["aws", "azure"]:
        readme = INFRA / module / "README.md"
        text = readme.read_text()
        inputs, outputs = tables(module)
        new = render(render(text, "inputs", inputs), "outputs", outputs)
        if new != text:
            if write:
                readme.write_text(new)
            else:
                stale.append(str(readme.relative_to(INFRA)))
    if stale:
        print(f"out of date: {', '.join(stale)} (infra/tests/run --fix rewrites the tables)")
        return 1
    print("module READMEs: inputs and outputs tables up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
