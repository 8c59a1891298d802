"""CLI reference: every command, subcommand, argument and option of the Typer app, with help, type and default.

``walk`` (imported by the test) lists the click commands of ``thrust_cli.cli.app``; ``render`` writes the page.
"""

from __future__ import annotations

from typing import Any


def walk(cmd: Any, path: str = "thrust") -> list[tuple[str, Any]]:
    """(full command path, command) for the command and, recursively, all its subcommands."""
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):  # a group (Typer vendors its own click: duck-typed)
        for name in sorted(cmd.commands):
            out.extend(walk(cmd.commands[name], f"{path} {name}"))
    return out


def root() -> Any:
    """The click command behind Thrust's Typer app."""
    import typer

    from thrust_cli.cli import app

    return typer.main.get_command(app)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(cmd: Any) -> str:
    """The Markdown page."""
    out = ["# CLI reference", "", "Generated from the Typer app (`thrust_cli.cli.app`) at build time.", ""]
    for path, c in walk(cmd):
        out += [f"## `{path}`", "", _cell(c.help or ""), ""]
        params = [p for p in c.params if p.name != "help"]
        if not params:
            continue
        out += ["| argument / option | type | default | help |", "|---|---|---|---|"]
        for p in params:
            is_option = p.param_type_name == "option"
            names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts]) if is_option else f"`{p.name.upper()}`"
            default = "" if p.default is None or callable(p.default) else f"`{p.default}`"
            kind = getattr(p, "display_type", None) or getattr(p, "type_descriptor", "")
            out.append(f"| {names} | {_cell(kind)} | {_cell(default)} | {_cell(getattr(p, 'help', '') or '')} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    import mkdocs_gen_files

    with mkdocs_gen_files.open("reference/cli.md", "w") as fh:
        fh.write(render(root()))


if __name__ in {"__main__", "<run_path>"}:
    main()
