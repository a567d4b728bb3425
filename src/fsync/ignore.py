"""Which paths fsync leaves alone: gitignore patterns plus fsync's own files.

Pure: the patterns come in as lines (the scanner reads `.fsyncignore`), paths as `RelPath`s,
so the same matcher filters the local scan and the remote listing alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, NamedTuple

from fsync.model import RelPath
from fsync.paths import TEMP_PREFIX, is_temp_name

STATE_DIR = ".fsync"
"""fsync's own folder (state database, lock): never synced, at any depth."""

IGNORE_FILE = ".fsyncignore"
"""The root's pattern file; it is synced itself, as `.gitignore` is committed."""

_OWN_MARK = STATE_DIR if TEMP_PREFIX.startswith(STATE_DIR) else ""
"""A substring of every path fsync always excludes (`.fsync` segments, temp names): a path
without it skips those checks in one scan (were the temp prefix ever to change, the mark is
"" and every path takes the full checks)."""


class IgnoreMatcher:
    """Decides whether a path is excluded, with gitignore semantics.

    Always excluded, whatever the patterns say: any path with a `.fsync` segment (the state
    folder of this root, or of a root nested inside it: a live SQLite database is never worth
    copying) and fsync's temporary files. The root's `.fsyncignore` is never excluded, so
    every side of a sync sees the same rules.
    """

    __slots__ = ("_excluded_dirs", "_patterns", "_spec")

    def __init__(self, patterns: tuple[str, ...] = ()) -> None:
        self._patterns = patterns
        self._spec: tuple[_Rule, ...] | None = None
        if patterns:
            # pathspec costs ~10 ms to import: a root without patterns never pays it.
            from pathspec import GitIgnoreSpec  # noqa: PLC0415

            # Paths are matched in NFC (`to_relpath`); a pattern typed in NFD (macOS input)
            # matched none of them, and what a user excluded was uploaded.
            lines = [_for_pathspec(git_trimmed(_composed(line))) for line in patterns]
            try:
                compiled = GitIgnoreSpec.from_lines(lines).patterns
            except ValueError:
                # A line git takes as matching nothing (`!`, or one ending in a lone
                # backslash) stops pathspec, and stopped every run: each line is compiled
                # alone then, and those are left out, as git leaves them.
                compiled = [p for line in lines for p in _compiled_alone(line)]
            self._spec = tuple(
                _Rule(p.regex, bool(p.include), _kind(str(p.pattern)))
                for p in compiled
                if p.include is not None and p.regex is not None
            )
        # Folder -> excluded by the patterns; folders are few next to files, so the memo
        # stays small while sparing one pattern match per ancestor of every file.
        self._excluded_dirs: dict[str, bool] = {}

    @classmethod
    def from_patterns(cls, lines: Iterable[str]) -> IgnoreMatcher:
        """A matcher for gitignore-syntax `lines`; blank lines and `#` comments are dropped,
        and trailing spaces as git drops them (`git_trimmed`)."""
        kept = []
        for line in lines:
            pattern = git_trimmed(line.rstrip("\r\n"))
            if pattern and not pattern.startswith("#"):
                kept.append(pattern)
        return cls(tuple(kept))

    @property
    def patterns(self) -> tuple[str, ...]:
        """The effective pattern lines, in order."""
        return self._patterns

    def ignores(
        self, path: RelPath, is_dir: bool = False, *, parents_checked: bool = False
    ) -> bool:
        """True if `path` (a folder when `is_dir`) is excluded from syncing.

        As in git, anything inside an excluded folder is excluded too, and a negated pattern
        cannot bring it back. A tree walker that already pruned excluded folders passes
        `parents_checked=True` to skip re-checking the ancestors.
        """
        if _OWN_MARK in path:
            if path == IGNORE_FILE:
                return False
            name = path.rpartition("/")[2]
            if name == STATE_DIR or is_temp_name(name):
                return True
            if path.startswith(STATE_DIR + "/") or f"/{STATE_DIR}/" in path:
                return True
        spec = self._spec
        if spec is None:
            return False
        if not parents_checked and "/" in path and self._ancestor_excluded(spec, path):
            return True
        return _excluded(spec, path + "/" if is_dir else path)

    def also(self, other: IgnoreMatcher) -> IgnoreMatcher:
        """A matcher that excludes what this one or `other` excludes: the rules of two
        files at once (`_Either`)."""
        return _Either(self, other)

    def ignores_unseen(self, path: RelPath) -> bool:
        """True if `path` is excluded whether it is a file or a folder: what can be said of a
        path not looked at (a watcher's event, a path that is gone). Rules such as `/*` then
        `!/docs/` exclude `docs` as a file and keep it as a folder."""
        return self.ignores(path) and self.ignores(path, is_dir=True)

    def _ancestor_excluded(self, spec: tuple[_Rule, ...], path: str) -> bool:
        """True if a folder above `path` matches a pattern (checked top-down, memoised)."""
        memo = self._excluded_dirs
        end = path.find("/")
        while end != -1:
            folder = path[:end]
            excluded = memo.get(folder)
            if excluded is None:
                excluded = memo[folder] = _excluded(spec, folder + "/")
            if excluded:
                return True
            end = path.find("/", end + 1)
        return False


class _Either(IgnoreMatcher):
    """Excludes what either of two matchers excludes. Not the rules of one file joined: a
    negation in one (`!*.key`) would take back what the other leaves out."""

    __slots__ = ("_first", "_second")

    def __init__(self, first: IgnoreMatcher, second: IgnoreMatcher) -> None:
        super().__init__()
        self._first, self._second = first, second
        self._patterns = first.patterns + second.patterns

    def ignores(
        self, path: RelPath, is_dir: bool = False, *, parents_checked: bool = False
    ) -> bool:
        """True if either matcher excludes `path` (a walker pruning what this one excludes
        has pruned what each does)."""
        return self._first.ignores(
            path, is_dir, parents_checked=parents_checked
        ) or self._second.ignores(path, is_dir, parents_checked=parents_checked)


def _composed(line: str) -> str:
    """`line` in NFC, the form every path is matched in."""
    return line if line.isascii() else unicodedata.normalize("NFC", line)


def _compiled_alone(line: str) -> list[Any]:
    """pathspec's pattern for one line, or none where it refuses the line."""
    from pathspec import GitIgnoreSpec  # noqa: PLC0415 - see IgnoreMatcher.__init__

    try:
        return list(GitIgnoreSpec.from_lines([line]).patterns)
    except ValueError:
        return []


def git_trimmed(line: str) -> str:
    """`line` without its trailing spaces, as git reads a pattern line (`trim_trailing_spaces`
    in git's dir.c): only spaces, not tabs, and not a space escaped with a backslash."""
    last_space: int | None = None
    i, end = 0, len(line)
    while i < end:
        char = line[i]
        if char == " ":
            if last_space is None:
                last_space = i
        else:
            if char == "\\":
                i += 1  # the escaped character, whatever it is, is kept
                if i == end:
                    return line
            last_space = None
        i += 1
    return line if last_space is None else line[:last_space]


def _for_pathspec(pattern: str) -> str:
    """`pattern` (trimmed as git trims it) spelled so that pathspec keeps its end.

    pathspec strips all whitespace from the end of a line unless it ends with an escaped
    space, where git has already dropped all it drops (`git_trimmed`) and keeps the rest: a
    trailing tab, say. Each whitespace character at the end, escaped or not, is written as
    a bracket expression of its own (`[\\t]`), which matches just that character.
    """
    tokens: list[str] = []
    i, end = 0, len(pattern)
    while i < end:
        step = 2 if pattern[i] == "\\" and i + 1 < end else 1
        tokens.append(pattern[i : i + step])
        i += step
    cut = len(tokens)
    while cut and tokens[cut - 1][-1].isspace():
        cut -= 1
    if cut == len(tokens):
        return pattern
    return "".join(tokens[:cut]) + "".join(f"[{t[-1]}]" for t in tokens[cut:])


_DIR_MARK = "ps_d"
"""The group pathspec's pattern regexes set where they matched a folder (pathspec 0.12-1.x:
`pathspec.patterns.gitignore.spec._DIR_MARK`)."""


class _Rule(NamedTuple):
    """One pattern line: pathspec's regex for it, whether it excludes (not `!`), its kind."""

    regex: re.Pattern[str]
    include: bool
    kind: int


_PLAIN, _INSIDE, _BELOW = 0, 1, 2
"""Kinds of pattern line: any other; `X/**` (what lies in X, not X); `X/**/` (the folders
below X, not X)."""


def _kind(line: str) -> int:
    """The kind of a pattern line, worked out once per line, not per path matched.

    `X/**/` counts only when X is a real folder pattern: pathspec's regex for `/**/` or
    `**/**/` (every folder) is unanchored, and has no prefix to see past.
    """
    line = line.rstrip()
    if line.endswith("/**"):
        return _INSIDE
    if line.endswith("/**/") and line.lstrip("!").lstrip("/")[:-4].replace("**", "").strip("/"):
        return _BELOW
    return _PLAIN


def _excluded(spec: tuple[_Rule, ...], path: str) -> bool:
    """Whether the patterns exclude `path` itself (a folder ends with "/"), once no folder
    above it is excluded (the caller checks those, top-down): the last pattern that matches
    the path itself decides, as in git.

    Not pathspec's own `match_file`: its regexes also match a path below a matching folder
    (`*/` matches `docs/a.txt` through `docs/`), and it then ranks such matches below the
    others, which gets "only .txt files" (`*`, `!*/`, `!*.txt`) wrong: it excludes every
    folder, where git keeps `docs/a.txt` (checked against `git check-ignore` in the tests).
    """
    excluded = False
    for regex, include, kind in spec:
        if _matches_itself(regex, kind, path):
            excluded = include
    return excluded


def _matches_itself(regex: re.Pattern[str], kind: int, path: str) -> bool:
    """True if `regex`, of a pattern line of `kind`, matches `path` itself, not only a
    folder above it."""
    if kind == _INSIDE and path.endswith("/"):
        # `build/**` is what lies inside build, not build itself (git keeps `build/out.txt`
        # under `!build/out.txt`): pathspec's regex, `^build/`, also matches the folder's own
        # "build/", so it must match the path without its slash.
        return regex.search(path[:-1]) is not None
    found = regex.search(path)
    if found is None:
        return False
    if kind == _BELOW:
        # `src/**/` is any folder below src, not src: pathspec's regex ends at `src/`.
        return path.endswith("/") and found.end() < len(path)
    if found.groupdict().get(_DIR_MARK) is None or found.end(_DIR_MARK) == len(path):
        return True
    if not path.endswith("/"):
        return False  # a folder above a file matched
    # An unanchored folder pattern (`*/`) matched the first folder; the path's own may too.
    last = regex.search(path, len(path) - 1)
    return last is not None and last.groupdict().get(_DIR_MARK) is not None
