"""Config reference: every group option and key of ``conf/`` with its default, type, allowed values and meaning.

Pure functions (``collect``, ``render``) read the typed schemas of ``thrust_cli/run/config.py`` and the comments of
``conf/**/*.yaml``; ``tests/integration/test_docs_site.py`` imports this file by path. Run by mkdocs-gen-files, it
writes ``reference/config.md``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
KEY_RE = re.compile(r"^(\s*)([A-Za-z_][\w-]*):(.*)$")


@dataclass
class Key:
    """One documented config key."""

    path: str  # dotted, as on the command line: algo.gamma
    type: str
    default: Any
    allowed: str
    meaning: str


def _strip_comment(rest: str) -> tuple[str, str]:
    """Split ``value  # comment`` (a ``#`` inside quotes is kept in the value)."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1 :].strip()
    return rest.strip(), ""


def yaml_comments(path: Path, prefix: str = "") -> dict[str, str]:
    """Dotted key path -> comment text (the block right above the key, its inline comment and its continuation)."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    above: list[str] = []
    last: tuple[str, int] | None = None  # (path, indent) of the latest key with an inline comment
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            above, last = [], None
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            indent = len(line) - len(line.lstrip())
            if last is not None and indent > last[1] and not text.startswith("@"):
                out[last[0]] = (out[last[0]] + " " + text).strip()
            elif not text.startswith("@"):
                above.append(text)
                last = None
            continue
        m = KEY_RE.match(line)
        if m is None:  # a list item or a continuation of a value
            above, last = [], None
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        dotted = ".".join(([prefix] if prefix else []) + [k for _, k in stack])
        _, inline = _strip_comment(m.group(3))
        text = " ".join([*above, inline]).strip()
        if text:
            out[dotted] = text
        last = (dotted, indent) if inline else None
        above = []
    return out


def _is_global(path: Path) -> bool:
    return "# @package _global_" in path.read_text()


def all_comments() -> dict[str, str]:
    """Comments of every yaml file under conf/, keyed by the full dotted path; the option's own file wins."""
    out: dict[str, str] = {}
    files = sorted(CONF.rglob("*.yaml"))
    for path in files:
        rel = path.relative_to(CONF)
        prefix = "" if rel.parent == Path(".") or _is_global(path) else ".".join(rel.parent.parts)
        for key, text in yaml_comments(path, prefix).items():
            out.setdefault(key, text)
    return out


def source_comments(schema: type) -> dict[str, str]:
    """Field name -> the inline ``# comment`` on its line in the schema's source."""
    out: dict[str, str] = {}
    try:
        lines, _ = inspect.getsourcelines(schema)
    except (OSError, TypeError):
        return out
    for line in lines:
        m = re.match(r"^\s+(\w+):[^#]*#\s*(?!noqa|type:)(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        value = f.default_factory()
        return None if is_dataclass(value) else value
    return MISSING


def _type(f: Any) -> str:
    return str(f.type).replace("builtins.", "").replace("typing.", "")


def schema_keys(schema: type, prefix: str, comments: dict[str, str]) -> list[Key]:
    """Keys of a schema (nested schemas flattened), each with its meaning from the yaml or the schema source."""
    own = source_comments(schema)
    keys: list[Key] = []
    for f in fields(schema):
        path = f"{prefix}.{f.name}" if prefix else f.name
        if isinstance(f.default_factory, type) and is_dataclass(f.default_factory):
            keys.extend(schema_keys(f.default_factory, path, comments))
            continue
        check = f.metadata.get("check")
        meaning = comments.get(path) or own.get(f.name, "")
        if f.name == "name" and not meaning:
            meaning = "the option of this group (set by choosing it: `" + prefix + "=<option>`)"
        keys.append(Key(path, _type(f), _default(f), check[1] if check else "", meaning))
    return keys


def yaml_value(path: Path, dotted: str) -> Any:
    """The value of ``dotted`` (relative to the file's own root) in a yaml file, or MISSING."""
    node: Any = yaml.safe_load(path.read_text()) or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def collect() -> dict[str, list[tuple[str, str, list[Key]]]]:
    """Section title -> [(option, description, keys)], covering every group option and section of the schemas."""
    from thrust_cli.run import config as c

    comments = all_comments()
    out: dict[str, list[tuple[str, str, list[Key]]]] = {
        "top level (conf/config.yaml)": [("", "", schema_keys(c.TopConfig, "", comments))]
    }
    for section, schema in c.SECTIONS.items():
        doc = inspect.getdoc(schema) or ""
        out[f"`{section}`"] = [("", doc, schema_keys(schema, section, comments))]
    for group, options in c.GROUPS.items():
        rows = []
        for option, schema in options.items():
            path = CONF / group / f"{option}.yaml"
            doc = yaml_comments_header(path) if path.is_file() else ""
            # the option's own file wins over another option's comment on the same key (env.kwargs: gym, custom)
            own = yaml_comments(path, "" if _is_global(path) else group) if path.is_file() else {}
            rows.append((option, doc, schema_keys(schema, group, {**comments, **own})))
        out[f"`{group}` group (conf/{group}/)"] = rows
    return out


def yaml_comments_header(path: Path) -> str:
    """The file's leading comment block (without ``@package`` lines)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@"):
            lines.append(text)
    return " ".join(lines)


def default_mismatches() -> list[str]:
    """``group/option.yaml: key yaml=... schema=...`` for every key whose yaml default disagrees with the schema's."""
    from thrust_cli.run import config as c

    bad = []
    checks: list[tuple[Path, str, list[Key]]] = [(CONF / "config.yaml", "", schema_keys(c.TopConfig, "", {}))]
    for section, schema in c.SECTIONS.items():
        checks.append((CONF / "config.yaml", "", schema_keys(schema, section, {})))
    for group, options in c.GROUPS.items():
        for option, schema in options.items():
            path = CONF / group / f"{option}.yaml"
            # env presets (package _global_) are tuned per env and may differ from the schema on purpose
            if path.is_file() and not _is_global(path):
                checks.append((path, group, schema_keys(schema, group, {})))
    for path, rel, keys in checks:
        for key in keys:
            inner = key.path if not rel else key.path[len(rel) + 1 :]
            value = yaml_value(path, inner)
            if value is MISSING or key.default is MISSING or key.path.endswith(".name"):
                continue
            same = value == key.default or (isinstance(value, (int, float)) and value == key.default)
            if not same:
                bad.append(f"{path.relative_to(ROOT)}: {key.path} yaml={value!r} schema={key.default!r}")
    return bad


def _fmt(value: Any) -> str:
    if value is MISSING:
        return "required"
    return (
        "`"
        + (
            "null"
            if value is None
            else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()
        )
        + "`"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(data: dict[str, list[tuple[str, str, list[Key]]]]) -> str:
    """The Markdown page."""
    out = [
        "# Config reference",
        "",
        "Generated at build time from the typed schemas in `thrust_cli/run/config.py` and the comments in `conf/`,",
        "so it cannot drift from the code. Set any key on the command line: `thrust train algo.gamma=0.995`;",
        "choose a group option with `group=option` (`thrust train env=snake policy=lstm`). Defaults are the",
        "schemas'; an env preset (`conf/env/*.yaml`, package `_global_`) may set other groups' keys for that env.",
        "",
    ]
    for title, rows in data.items():
        out += [f"## {title}", ""]
        for option, doc, keys in rows:
            if option:
                out += [f"### `{option}`", ""]
            if doc:
                out += [_cell(doc), ""]
            out += ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
            for k in keys:
                cells = [
                    f"`{k.path}`",
                    # `str` \| `None`: a pipe inside a code span would show its escaping backslash
                    " \\| ".join(f"`{part.strip()}`" for part in k.type.split("|")),
                    _cell(_fmt(k.default)),
                    _cell(k.allowed),
                    _cell(k.meaning),
                ]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def main() -> None:
    import mkdocs_gen_files

    with mkdocs_gen_files.open("reference/config.md", "w") as fh:
        fh.write(render(collect()))


if __name__ in {"__main__", "<run_path>"}:
    main()
