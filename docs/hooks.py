"""MkDocs hooks: the reference pages are generated from the code, so they cannot drift from it.

- `<!-- params-reference -->`: every params.yaml key, its allowed values from the pydantic models
  (pipeline/params.py), its default and its comment from params.yaml;
- `<!-- cli-reference -->`: every command's `--help`, from its argparse parser (pipeline/cli/ner.py);
- `<!-- architecture -->`: the import graph between the parts of pipeline/ (read by grimp, the
  graph library of import-linter) as a diagram, and every module with its size and docstring;
- the repository's reports/, searches/, studies/ and params.yaml join the site, so pages link to the
  committed figures and files themselves.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
SHARED_FOLDERS = ("reports", "searches", "studies")
SHARED_FILES = ("params.yaml",)


class StaticFile(File):
    """A markdown file served as it is, not rendered as a page."""

    def is_documentation_page(self) -> bool:
        return False


def on_files(files, config):
    for folder in SHARED_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file():
                # the evaluation's own reports/*.md render as pages; the experiments' archived
                # copies (whose links point at figures that were not archived) are served as text
                kind = StaticFile if path.suffix == ".md" and path.parent != ROOT / "reports" else File
                files.append(kind(str(path.relative_to(ROOT)), str(ROOT), config["site_dir"],
                                  config["use_directory_urls"]))
    for name in SHARED_FILES:
        files.append(File(name, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if str(ROOT) not in sys.path:  # MkDocs loads hooks with its own import path: the project's modules
        sys.path.insert(0, str(ROOT))
    if "<!-- params-reference -->" in markdown:
        markdown = markdown.replace("<!-- params-reference -->", params_reference())
    if "<!-- architecture -->" in markdown:
        markdown = markdown.replace("<!-- architecture -->", architecture())
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    return markdown


def yaml_comments() -> dict[str, tuple[str, str]]:
    """'section.key' -> (value as written, comment) from params.yaml's lines."""
    found, section = {}, None
    for line in (ROOT / "params.yaml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^( *)([A-Za-z_]\w*):\s*([^#]*?)\s*(?:#\s*(.*))?$", line)
        if not match:
            continue
        indent, key, value, comment = match.groups()
        if not indent:
            section = key
            found[key] = (value, comment or "")
        elif len(indent) == 2 and section:
            found[f"{section}.{key}"] = (value, comment or "")
    return found


def allowed(schema: dict, defs: dict) -> str:
    """A field's JSON schema as a short phrase: `lstm`, `gru`; an integer >= 1; ..."""
    if "$ref" in schema:
        return allowed(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        return " or ".join(allowed(option, defs) for option in schema["anyOf"])
    if "enum" in schema or "const" in schema:
        return ", ".join(f"`{value}`" for value in schema.get("enum", [schema.get("const")]))
    kind = {"integer": "an integer", "number": "a number", "boolean": "`true` or `false`", "string": "a string",
            "null": "`null`", "array": "a list", "object": "a mapping"}.get(schema.get("type"), "a value")
    bounds = [f"{sign} {schema[key]}" for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                         ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    if "minItems" in schema:
        bounds.append(f"at least {schema['minItems']} item{'s' if schema['minItems'] > 1 else ''}")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def cell(text: str) -> str:
    """Text for a table cell: a bar would end the cell, braces would read as attr_list attributes."""
    return text.replace("|", "\\|").replace("{", "&#123;").replace("}", "&#125;")


def params_reference() -> str:
    from pipeline.params import Params

    with warnings.catch_warnings():  # `mlflow.register` shadows a pydantic method name: harmless here
        warnings.simplefilter("ignore")
        schema = Params.model_json_schema()
    defs, comments = schema.get("$defs", {}), yaml_comments()
    out = []
    for section, section_schema in schema["properties"].items():
        value, comment = comments.get(section, ("", ""))
        out += [f"## `{section}`", "", cell(comment) if comment else "", ""]
        target = defs.get(section_schema.get("$ref", "").split("/")[-1])
        if target is None:  # models, compare: the section is the value
            out += [f"Allowed: {allowed(section_schema, defs)}. Default:", "", "```yaml",
                    yaml_block(section), "```", ""]
            continue
        out += ["| key | default | allowed | what it does |", "|---|---|---|---|"]
        for key, field in target["properties"].items():
            value, comment = comments.get(f"{section}.{key}", ("", ""))
            out.append(f"| `{section}.{key}` | `{cell(value)}` | {cell(allowed(field, defs))} | {cell(comment)} |")
        out.append("")
    return "\n".join(out)


def yaml_block(section: str) -> str:
    lines = (ROOT / "params.yaml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{section}:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return "\n".join(line for line in lines[start:end] if line.strip())


def cli_reference() -> str:
    from pipeline.cli.ner import COMMANDS, command_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page is the same everywhere
    out = []
    for name, command in COMMANDS.items():
        kind = "DVC stage" if command.stage else "tool"
        out += [f"## `ner {name}`", "", f"{command.summary} ({kind}; also `python -m {command.module}`).", "",
                "```text", command_parser(name).format_help().rstrip(), "```", ""]
    return "\n".join(out)



# the parts of pipeline/ drawn as boxes, top down as pyproject.toml's layers contract orders them;
# the foundation modules (imported by nearly everything) are listed under the diagram instead
PARTS = ["cli", "stages", "tracking", "training", "evaluation", "model", "params", "data"]
FOUNDATION = ["progress", "machine", "files", "layout", "errors"]


def part_of(module: str) -> str | None:
    name = module.split(".")[1] if module.count(".") else None
    return name if name in PARTS else None


def architecture() -> str:
    import grimp

    graph = grimp.build_graph("pipeline", exclude_type_checking_imports=True)  # as pyproject.toml's contracts
    edges = sorted({(part_of(importer), part_of(imported))
                    for importer in graph.modules for imported in graph.find_modules_directly_imported_by(importer)
                    if part_of(importer) and part_of(imported) and part_of(importer) != part_of(imported)})
    out = ["```mermaid", "flowchart TD"]
    out += [f"    {part}[\"{part}/\"]" if (ROOT / "pipeline" / part).is_dir() else f"    {part}[\"{part}.py\"]"
            for part in PARTS]
    out += [f"    {a} --> {b}" for a, b in edges]
    upward = [f"{a} -> {b}" for a, b in edges if PARTS.index(a) > PARTS.index(b)]
    direction = f"{len(upward)} pointing up ({', '.join(upward)})" if upward else "every one pointing down"
    out += ["```", "", f"*Generated from the imports when this site was built: {len(edges)} dependencies between "
            f"the parts, {direction}. Not drawn: " + ", ".join(f"`{m}.py`" for m in FOUNDATION)
            + ", which every part may import and which import no part.*", ""]
    out += ["| module | lines | what it is |", "|---|---|---|"]
    for module in sorted(graph.modules):
        path = ROOT / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        lines = len(path.read_text(encoding="utf-8").splitlines())
        out.append(f"| `{path.relative_to(ROOT)}` | {lines} | {cell(first_paragraph(path))} |")
    return "\n".join(out) + "\n"


def first_paragraph(path: Path) -> str:
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split())
