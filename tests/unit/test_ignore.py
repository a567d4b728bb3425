"""ignore: gitignore semantics, plus fsync's own always-excluded and never-excluded names."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fsync.ignore import IgnoreMatcher
from fsync.model import RelPath
from fsync.paths import to_relpath


def _m(*lines: str) -> IgnoreMatcher:
    return IgnoreMatcher.from_patterns(lines)


def _ign(m: IgnoreMatcher, path: str, is_dir: bool = False) -> bool:
    return m.ignores(to_relpath(path), is_dir)


def test_no_patterns_ignores_ordinary_files() -> None:
    m = IgnoreMatcher()
    assert not _ign(m, "a.txt")
    assert not _ign(m, "deep/er/file.log")
    assert not _ign(m, "dir", is_dir=True)
    assert m.patterns == ()


def test_two_files_rules_leave_out_what_either_leaves_out() -> None:
    """The rules of this side and those arriving from the other (`app.arriving_rules`): a
    negation in one takes back nothing the other leaves out, as one joined file would."""
    m = _m("*.log").also(_m("secrets/", "!*.log"))
    assert _ign(m, "a.log")
    assert _ign(m, "secrets/key.pem")
    assert _ign(m, "secrets", is_dir=True)
    assert not _ign(m, "a.txt")
    assert not _ign(m, ".fsyncignore")


def test_glob_matches_at_any_depth() -> None:
    m = _m("*.log")
    assert _ign(m, "a.log")
    assert _ign(m, "d/e/b.log")
    assert not _ign(m, "a.txt")
    assert not _ign(m, "log")


def test_negation_re_includes_a_file() -> None:
    m = _m("*.log", "!keep.log")
    assert _ign(m, "x.log")
    assert not _ign(m, "keep.log")
    assert not _ign(m, "sub/keep.log")


def test_later_pattern_wins() -> None:
    m = _m("!keep.log", "*.log")
    assert _ign(m, "keep.log")


def test_directory_pattern_matches_folders_and_their_contents_only() -> None:
    m = _m("build/")
    assert _ign(m, "build", is_dir=True)
    assert _ign(m, "sub/build", is_dir=True)
    assert _ign(m, "build/out.o")
    assert _ign(m, "sub/build/deep/out.o")
    assert not _ign(m, "build")  # a file called build is not a folder
    assert not _ign(m, "builder/x")


def test_file_inside_excluded_folder_cannot_be_re_included() -> None:
    """git: 'It is not possible to re-include a file if a parent directory is excluded'."""
    m = _m("build/", "!build/keep")
    assert _ign(m, "build/keep")
    assert _ign(m, "build/other")


def test_contents_pattern_allows_re_including_a_file() -> None:
    m = _m("logs/*", "!logs/keep.log")
    assert _ign(m, "logs/a.log")
    assert not _ign(m, "logs/keep.log")
    assert not _ign(m, "logs", is_dir=True)


def test_parents_checked_skips_ancestor_matching() -> None:
    m = _m("build/", "!build/keep")
    path = RelPath("build/keep")
    assert m.ignores(path)
    # A walker that pruned build/ never asks about build/keep; when told the parents were
    # checked, only the patterns' verdict on the path itself counts.
    assert not m.ignores(path, parents_checked=True)


def test_anchored_and_double_star_patterns() -> None:
    m = _m("/top.txt", "a/**/b")
    assert _ign(m, "top.txt")
    assert not _ign(m, "sub/top.txt")
    assert _ign(m, "a/b")
    assert _ign(m, "a/x/y/b")
    assert not _ign(m, "c/a/x/b")


@pytest.mark.parametrize(
    "path", [".fsync", ".fsync/state.db", ".fsync/lock", "sub/.fsync", "sub/.fsync/state.db"]
)
def test_state_folder_is_always_ignored(path: str) -> None:
    assert _ign(IgnoreMatcher(), path, is_dir=True)
    assert _ign(IgnoreMatcher(), path)
    assert _ign(_m("!.fsync", "!.fsync/**"), path)


def test_temp_names_are_always_ignored() -> None:
    m = _m("!*.tmp")
    assert _ign(m, ".fsync-0123456789abcdef.tmp")
    assert _ign(m, "deep/dir/.fsync-fedcba9876543210.tmp")
    assert not _ign(m, "fsync-0123456789abcdef.tmp")
    assert not _ign(m, ".fsync-0123456789abcdef.tmp.bak")
    # Only names fsync makes: a user's own file of that pattern is synced.
    assert not _ign(m, ".fsync-x.tmp")
    assert not _ign(m, ".fsync-0123456789ABCDEF.tmp")


def test_fsyncignore_itself_is_never_ignored() -> None:
    for m in (IgnoreMatcher(), _m(".*"), _m("*"), _m(".fsyncignore")):
        assert not _ign(m, ".fsyncignore")
    # Only the root's file is special; a nested one follows the patterns.
    assert _ign(_m("*"), "sub/.fsyncignore")


def test_comments_blank_lines_and_line_endings() -> None:
    m = IgnoreMatcher.from_patterns(["# a comment\n", "\n", "   \n", "*.bak\r\n"])
    assert m.patterns == ("*.bak",)
    assert _ign(m, "x.bak")
    assert not _ign(m, "# a comment")


def test_escaped_hash_is_a_pattern() -> None:
    m = _m(r"\#literal")
    assert _ign(m, "#literal")


def test_unicode_patterns_match_nfc_paths() -> None:
    m = _m("café/")
    assert _ign(m, "café/menu.txt")
    assert _ign(m, "cafe\u0301/menu.txt")  # to_relpath makes it NFC before matching


@pytest.mark.parametrize(
    ("lines", "path", "excluded"),
    [
        (["cafe\u0301/"], "caf\u00e9/menu.txt", True),
        (["[e\u0301]x.txt"], "\u00e9x.txt", True),
        (["*", "!*/", "!cafe\u0301/keep"], "caf\u00e9/keep", False),
    ],
)
def test_decomposed_patterns_match_as_composed(lines: list[str], path: str, excluded: bool) -> None:
    """A pattern typed in NFD (as macOS input gives it) matches the NFC path every name is
    made into: it matched nothing, and the files a user excluded were uploaded."""
    assert _ign(_m(*lines), path) is excluded


def test_only_some_files_the_gitignore_way() -> None:
    """`*`, `!*/`, `!*.txt`: every folder is walked and only .txt files are kept (pathspec's
    own matcher excludes every folder for these)."""
    m = _m("*", "!*/", "!*.txt")
    assert not _ign(m, "docs", is_dir=True)
    assert not _ign(m, "docs/deep/a.txt")
    assert _ign(m, "docs/b.bin")
    assert not _ign(m, "a.txt")


def test_a_path_not_looked_at_is_ignored_only_if_it_is_either_way() -> None:
    m = _m("/*", "!/docs/")
    assert _ign(m, "docs")
    assert not _ign(m, "docs", is_dir=True)
    assert not m.ignores_unseen(RelPath("docs"))  # a folder moved in: the scanner decides
    assert m.ignores_unseen(RelPath("other"))


RULE_SETS = [
    ["*", "!*/", "!*.txt"],
    ["/*", "!/docs/"],
    ["*.d", "!conf.d/"],
    ["build*", "!build-keep/"],
    ["foo/", "!foo/bar"],
    ["*.log", "!keep.log"],
    ["a/**/b", "!a/x/b"],
    ["docs/*", "!docs/keep/"],
    ["**/tmp/", "!**/tmp/keep"],
    ["*", "!/docs/", "!/docs/**"],
    ["/node_modules", "build/", "!build/out.txt"],
    ["[ab]", "!b"],
    ["**/x.txt", "!/x.txt"],
    ["build/", "!src/**/"],
    ["build/**", "!build/out.txt"],
    ["docs/**", "!docs/keep/", "!docs/keep/**"],
    ["a/**/", "!a/x/"],
    ["s/**/k*", "!s/tmp/"],
    ["p/**/b/**", "!p/b/x/b/keep"],
    ["/**", "!/docs/", "!/docs/**"],
    ["docs/**", "!docs/**/"],
    ["**/b/**"],
    ["/**/"],
    ["**/**/"],
    ["*", "!/**/", "!*.txt"],
    ["*/**/"],
    ["**/*/**/"],
    ["/**"],
    ["**/**"],
]
TREE_FILES = [
    "docs/a.txt", "docs/b.bin", "docs/keep/f", "docs/other", "a.txt", "x", "x.txt",
    "conf.d/f", "other.d/f", "build-keep/f", "build1/f", "foo/bar", "keep.log", "z.log",
    "a/b", "a/x/b", "a/y/b", "s/tmp/keep", "s/tmp/k2", "node_modules/q", "build/out.txt",
    "sub/node_modules/q", "deep/x.txt", "b", "src/build/f", "p/b/x/b/keep",
]  # fmt: skip


def _git_verdicts(tmp: Path, rules: list[str], paths: list[str]) -> dict[str, bool]:
    """What `git check-ignore` says of each path's own match (not its folders')."""
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    (tmp / ".gitignore").write_text("\n".join(rules) + "\n")
    for rel in TREE_FILES:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text("")
    out = subprocess.run(
        ["git", "-C", str(tmp), "check-ignore", "--no-index", "--stdin", "-v", "-n"],
        input="\n".join(paths),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    verdicts = {}
    for line in out.splitlines():
        source, path = line.split("\t")
        pattern = source.split(":", 2)[2] if source != "::" else ""
        verdicts[path] = bool(pattern) and not pattern.startswith("!")
    return verdicts


@pytest.mark.skipif(shutil.which("git") is None, reason="git is the reference")
@pytest.mark.parametrize("rules", RULE_SETS, ids=[" ".join(r) for r in RULE_SETS])
def test_the_same_verdicts_as_git(tmp_path: Path, rules: list[str]) -> None:
    parents = {os.path.dirname(p) for p in TREE_FILES} - {""}
    folders = sorted({f.rsplit("/", i)[0] for f in parents for i in range(f.count("/") + 1)})
    paths = sorted(set(TREE_FILES) | set(folders))
    own = _git_verdicts(tmp_path, rules, paths)
    m = IgnoreMatcher.from_patterns(rules)
    for path in paths:
        parts = path.split("/")
        # git's listing skips what lies in an excluded folder; check-ignore does not say so
        expected = any(own["/".join(parts[:i])] for i in range(1, len(parts))) or own[path]
        assert m.ignores(RelPath(path), path in folders) == expected, path


TRAILING_WHITESPACE = [
    # (pattern line, path, excluded): git drops a line's trailing spaces, unless escaped
    # with a backslash, and keeps every other character, a tab included.
    ("*.log\t", "a.log", False),
    ("*.log\t", "a.log\t", True),
    ("tab\t", "tab", False),
    ("tab\t", "tab\t", True),
    ("\t", "\t", True),
    ("sp  ", "sp", True),
    ("sp  ", "sp  ", False),
    ("esc\\ ", "esc ", True),
    ("esc\\ ", "esc", False),
    ("esc\\  ", "esc ", True),
    ("two\\ \\ ", "two  ", True),
    ("mix \t", "mix \t", True),
    ("mix \t", "mix", False),
    ("tabsp\t ", "tabsp\t", True),
    ("tabsp\t ", "tabsp", False),
    ("bs\\\t", "bs\t", True),
    ("lit\\\\ ", "lit\\", True),
]


MATCHING_NOTHING = [
    # (pattern line, path, excluded): lines pathspec refuses, which git takes as matching
    # nothing; they stopped every run ("Invalid git pattern").
    ("foo\\", "foo", False),
    ("foo\\", "foo\\", False),
    ("odd\\\\\\", "odd\\", False),
    ("\\", "\\", False),
    ("!", "!", False),
]


@pytest.mark.parametrize(("line", "path", "excluded"), TRAILING_WHITESPACE)
def test_trailing_whitespace_the_git_way(line: str, path: str, excluded: bool) -> None:
    assert IgnoreMatcher.from_patterns([line]).ignores(RelPath(path)) == excluded


@pytest.mark.parametrize(("line", "path", "excluded"), MATCHING_NOTHING)
def test_a_line_git_reads_as_matching_nothing_leaves_the_others_working(
    line: str, path: str, excluded: bool
) -> None:
    m = IgnoreMatcher.from_patterns(["*.log", line, "!keep.log"])
    assert m.ignores(RelPath(path)) == excluded
    assert m.ignores(RelPath("a.log"))
    assert not m.ignores(RelPath("keep.log"))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is the reference")
def test_the_trailing_whitespace_table_is_git_s(tmp_path: Path) -> None:
    for n, (line, path, excluded) in enumerate(TRAILING_WHITESPACE + MATCHING_NOTHING):
        repo = tmp_path / str(n)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / ".gitignore").write_text(line + "\n")
        out = subprocess.run(
            ["git", "-C", str(repo), "check-ignore", "--no-index", "--stdin", "-z", "-v", "-n"],
            input=path + "\0",
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        _source, _line_number, pattern, listed, _ = out.split("\0")
        assert listed == path
        assert (bool(pattern) and not pattern.startswith("!")) == excluded, (line, path)
