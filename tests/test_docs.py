"""The documentation: the configuration reference matches the schema, and every link resolves.

* docs/configuration.md has one row per field of the configuration dataclasses in
  src/sfbd/schema.py (nested sections as ``section.key``), with the schema's default, and no
  row for a key the schema lacks.
* Every relative markdown link in README.md, docs/*.md, CHANGELOG.md and benchmarks/*.md
  points to an existing file, and every ``#anchor`` to a heading of its target, by GitHub's
  slug rules (lower case; punctuation dropped; each space a hyphen; ``-1``, ``-2`` for repeats).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from sfbd import plugins
from sfbd.config import _all_keys
from sfbd.schema import Config

plugins.load()  # sfbd's own plug-ins add their keys (data.gain, model.hidden, ...) to Config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
TOP = "Top level"  # the heading of the table of the keys outside any section


# --------------------------------------------------------------------------- the schema


def schema_defaults(node: object = None, prefix: str = "") -> dict[str, object]:
    """{dotted key: default} of every field of ``Config`` (a nested dataclass is a section),
    the plug-ins' keys included."""
    node = Config() if node is None else node
    out: dict[str, object] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            out.update(schema_defaults(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def section_heading(key: str) -> str:
    """The heading of the table in docs/configuration.md where ``key`` belongs."""
    return key.split(".", 1)[0] if "." in key else TOP


def doc_table(text: str) -> tuple[dict[str, tuple[str, str, int]], list[str]]:
    """Rows of the ``| key | default | meaning |`` tables of a page.

    Returns ``({key: (default text, heading, line number)}, problems)``; problems are rows of
    those tables not written ``| `key` | `default` | meaning |``, and keys listed twice.
    """
    rows: dict[str, tuple[str, str, int]] = {}
    problems: list[str] = []
    heading, in_table, fenced = "", False, False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced:
            continue
        if m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            heading = m.group(1)
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["key", "default"]:
            in_table = True
            continue
        if not in_table or set(line) <= set("|-: "):
            continue
        m = re.match(r"^\| `([A-Za-z0-9_.]+)` \| `([^`]*)` \|", line)
        if not m:
            problems.append(f"line {n}: not written | `key` | `default` | meaning |: {line[:60]}")
        elif m.group(1) in rows:
            problems.append(f"line {n}: {m.group(1)} is listed twice")
        else:
            rows[m.group(1)] = (m.group(2), heading, n)
    return rows, problems


def _yaml(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def config_doc_problems(text: str, schema: dict[str, object]) -> list[str]:
    """Everything that keeps ``text`` (docs/configuration.md) from matching ``schema``."""
    rows, problems = doc_table(text)
    for key in sorted(set(schema) - set(rows)):
        problems.append(
            f"missing: {key} (schema default {_yaml(schema[key])}): add the row "
            f"| `{key}` | `{_yaml(schema[key])}` | meaning | to the table under "
            f"'## {section_heading(key)}'"
        )
    for key in sorted(set(rows) - set(schema)):
        problems.append(
            f"extra: {key} (line {rows[key][2]}) is not a field of src/sfbd/schema.py: remove "
            "the row, or add the field"
        )
    for key in sorted(set(rows) & set(schema)):
        shown, heading, n = rows[key]
        try:
            parsed = yaml.safe_load(shown)
        except yaml.YAMLError:
            parsed = shown
        want = schema[key]
        if parsed != want or type(parsed) is not type(want):
            problems.append(
                f"default: {key} (line {n}) shows `{shown}`, the schema's default is "
                f"`{_yaml(want)}`"
            )
        if heading != section_heading(key):
            problems.append(
                f"place: {key} (line {n}) is under '## {heading}', it belongs under "
                f"'## {section_heading(key)}'"
            )
    return problems


def test_schema_walk_finds_every_key() -> None:
    keys = schema_defaults()
    assert sorted(keys) == sorted(_all_keys())  # the loader's own list of keys
    assert keys["data.sigma"] == 0.35 and keys["model.channel_mult"] == [1, 2]
    assert keys["method"] == "sfbd" and keys["eval.reference"] is None


def test_configuration_reference_matches_the_schema() -> None:
    problems = config_doc_problems(CONFIG_DOC.read_text(), schema_defaults())
    assert not problems, (
        "docs/configuration.md does not match src/sfbd/schema.py; each key needs one row "
        "| `key` | `default` | meaning | in the table of its section:\n  " + "\n  ".join(problems)
    )


def test_configuration_check_reports_missing_extra_and_wrong_defaults() -> None:
    schema = {"seed": 0, "data.sigma": 0.35, "data.noisy": None, "train.lr": 1e-3}
    head = "| key | default | meaning |\n|---|---|---|\n"
    text = (
        f"## {TOP}\n\n{head}| `seed` | `0` | s |\n\n"
        f"## data\n\n{head}| `data.sigma` | `0.3` | tau |\n| `data.extra` | `1` | x |\n\n"
        f"## eval\n\n{head}| `train.lr` | `1e-3` | lr |\n"
    )
    problems = config_doc_problems(text, schema)
    assert problems[0].startswith("missing: data.noisy (schema default null)")
    assert "under '## data'" in problems[0]
    assert problems[1].startswith("extra: data.extra (line 12)")
    assert problems[2].startswith("default: data.sigma (line 11) shows `0.3`")
    # YAML reads 1e-3 (no dot) as a string, so it is not the float default
    assert problems[3].startswith("default: train.lr (line 18) shows `1e-3`")
    assert problems[4].startswith("place: train.lr (line 18) is under '## eval'")
    assert len(problems) == 5
    fixed = text.replace("`0.3`", "`0.35`").replace("`1e-3`", "`0.001`")
    fixed = fixed.replace("| `data.extra` | `1` | x |", "| `data.noisy` | `null` | n |")
    fixed = fixed.replace("## eval", "## train")
    assert config_doc_problems(fixed, schema) == []
    assert doc_table(head + "| data.sigma | 0.35 | tau |\n")[1][0].startswith("line 3: not")


# --------------------------------------------------------------------------- links


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: the rendered text (no code ticks, emphasis
    stars, link targets or HTML tags) in lower case, every character that is not a letter,
    a digit, ``_``, ``-`` or a space dropped, and each space replaced by a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _strip_code(text: str) -> list[str]:
    """The lines of ``text`` with fenced blocks blanked and inline code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else re.sub(r"(`+)(?:(?!\1).)+?\1", "", line))
    return lines


def anchors(text: str) -> set[str]:
    """The anchors of every ATX heading of a page (repeats numbered as GitHub does)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        m = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")


def broken_links(page: Path) -> list[str]:
    """``file:line: target (why)`` for each relative link of ``page`` that does not resolve."""
    bad = []
    for n, line in enumerate(_strip_code(page.read_text()), 1):
        targets = [m.group(1) for m in LINK.finditer(line)]
        targets += [m.group(1) for m in REFDEF.finditer(line)]
        for target in targets:
            if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("//"):
                continue  # http:, https:, mailto: ...
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / unquote(path_part)).resolve() if path_part else page
            where = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{n}"
            if not dest.exists():
                bad.append(f"{where}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                bad.append(f"{where}: {target} (no heading with anchor #{anchor})")
    return bad


def pages() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    found += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "benchmarks").glob("*.md"))
    return [p for p in found if p.is_file()]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Image data, FID and the paper's settings", "image-data-fid-and-the-papers-settings"),
        ("1. Methods side by side", "1-methods-side-by-side"),
        ("`sfbd run`", "sfbd-run"),
        ("Long runs & preemption", "long-runs--preemption"),
        ("**Where** is my run?", "where-is-my-run"),
        ("The [paper](https://arxiv.org/abs/2502.05446) set-up", "the-paper-set-up"),
        ("train_loss and τ", "train_loss-and-τ"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered() -> None:
    text = "# A\n## Notes\n```\n## Notes\n```\n### Notes\n## Notes!\n"
    assert anchors(text) == {"a", "notes", "notes-1", "notes-2"}


def test_link_checker_reports_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Part two\n")
    (tmp_path / "fig.png").write_bytes(b"png")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok](other.md#part-two) ![ok](fig.png) [ok](#page) [w](https://x.y/z)\n"
        "[bad](missing.md) and [bad](other.md#part-three)\n"
        "`[code](not-checked.md)`\n\n```\n[fenced](not-checked.md)\n```\n"
        "[ref]: nowhere.md\n"
    )
    bad = broken_links(page)
    assert [b.split(": ", 1)[1] for b in bad] == [
        "missing.md (no such file)",
        "other.md#part-three (no heading with anchor #part-three)",
        "nowhere.md (no such file)",
    ]
    assert [re.search(r":(\d+): ", b).group(1) for b in bad] == ["4", "4", "10"]


def test_every_relative_link_resolves() -> None:
    checked = pages()
    assert ROOT / "docs" / "configuration.md" in checked and ROOT / "README.md" in checked
    bad = [b for p in checked for b in broken_links(p)]
    assert not bad, "broken links:\n  " + "\n  ".join(bad)


def test_readme_is_a_quickstart() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 15_000, f"README.md has {len(text)} characters; move detail to docs/"
    for command in ("make demo", "make test"):
        assert command in text
    assert "docs/README.md" in text or "(docs/)" in text


def test_readme_python_example_has_a_run_folder_of_its_own() -> None:
    """The README's Python example must not resume (and alter) a folder its shell examples
    write with other settings: its run directory appears in no `--out` of the README."""
    text = (ROOT / "README.md").read_text()
    python = "".join(re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M))
    py_dirs = set(re.findall(r'Run\(cfg, "([^"]+)"\)', python))
    assert py_dirs, "the README's Python example runs no sfbd.Run"
    shell_dirs = set(re.findall(r"--out (\S+)", text))
    assert not py_dirs & shell_dirs, py_dirs & shell_dirs
