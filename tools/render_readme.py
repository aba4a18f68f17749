"""Render nbs/index.ipynb to README.md: markdown cells as they are, code cells as fenced blocks."""
import json, sys
from pathlib import Path


def render(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        lines = src.splitlines()
        if any(l.strip() in ("#| hide", "#|hide") for l in lines): continue
        if cell["cell_type"] == "markdown":
            parts.append(src.strip())
            continue
        if cell["cell_type"] != "code": continue
        code = "\n".join(l for l in lines if not l.startswith("#|")).strip()
        echo = not any(l.replace(" ", "") == "#|echo:false" for l in lines)
        if code and echo: parts.append(f"```python\n{code}\n```")
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                parts.append("".join(data["text/markdown"]).strip())
                continue
            text = out.get("text") or data.get("text/plain")
            if text: parts.append("```\n" + "".join(text).rstrip() + "\n```")
    header = "<!-- Generated from nbs/index.ipynb by tools/render_readme.py; edit the notebook. -->"
    return header + "\n\n" + "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else "nbs/index.ipynb"
    dst = sys.argv[2] if len(sys.argv) > 2 else "README.md"
    text = render(json.loads(Path(src).read_text()))
    if not Path(dst).exists() or Path(dst).read_text() != text: Path(dst).write_text(text)
