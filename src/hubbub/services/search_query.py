"""Mattermost's post-search language: parsed into a `SearchQuery`, rendered for each database.

Pure functions, no I/O. `parse_search` turns what a user typed into terms (words and "quoted
phrases", a trailing `*` for a prefix, a leading `-` to exclude) and filters (`from:`, `in:` or
`channel:`, `before:`, `after:`, `on:`, each also negatable with `-` where it makes sense).
Splitting follows Mattermost's `splitWords`/`parseSearchFlags`: quotes group words, a flag with
an empty value takes the next word, punctuation around a word is dropped.

The renderers build each database's full-text query from the parsed terms only:

- `tsquery_text` for PostgreSQL's `to_tsquery('english', ...)`: every word is a quoted tsquery
  operand (single quotes doubled, backslashes escaped), so PostgreSQL's own parser splits it into
  lexemes (emails, URLs, hyphenated words come out as they are indexed); phrases join words with
  `<->`, prefixes add `:*`.
- `fts5_query` for SQLite's FTS5 `MATCH`: every term is one double-quoted string made only of
  letter-and-digit tokens, so it can never contain FTS5 syntax.

Nothing a user types can produce a syntax error: a word counts only if it has at least one letter
or digit (an empty quoted operand is the one thing both syntaxes reject), NUL and other control
characters are removed, and input length and term counts are capped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

MAX_INPUT_CHARS = 2048
MAX_TERMS = 32
MAX_PHRASE_WORDS = 16
MAX_FLAG_VALUES = 32
MAX_TZ_OFFSET_SECONDS = 14 * 3600
DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# The flags Mattermost recognises. `ext:` filters file searches; post search ignores it.
FLAGS = frozenset({"from", "in", "channel", "before", "after", "on", "ext"})

_TOKEN = re.compile(r"[^\W_]+")
_PUNCT_START = re.compile(r"^(?:[^\w#]|_)+")
_PUNCT_END = re.compile(r"(?:[^\w*]|_)+$")
_HASHTAG_START = re.compile(r"^#{2,}")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: what both databases index as words."""
    return [t.lower() for t in _TOKEN.findall(text)]


@dataclass(frozen=True, slots=True)
class Term:
    """A word or a phrase. Each of `words` has at least one letter or digit."""

    words: tuple[str, ...]
    prefix: bool = False

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(t for w in self.words for t in tokens(w))

    @property
    def text(self) -> str:
        """The term as the user would recognise it (for `matches`)."""
        return " ".join(self.words) + ("*" if self.prefix else "")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    terms: tuple[Term, ...] = ()
    excluded_terms: tuple[Term, ...] = ()
    from_users: tuple[str, ...] = ()
    excluded_users: tuple[str, ...] = ()
    in_channels: tuple[str, ...] = ()
    excluded_channels: tuple[str, ...] = ()
    on: date | None = None
    after: date | None = None
    before: date | None = None

    @property
    def is_empty(self) -> bool:
        """True when nothing selects posts: exclusions alone only narrow, so they do not count."""
        return not (
            self.terms
            or self.from_users
            or self.in_channels
            or self.on
            or self.after
            or self.before
        )


def _clean(text: str) -> str:
    """Control and format characters (NUL included) become spaces; length is capped."""
    text = text[:MAX_INPUT_CHARS]
    return "".join(" " if unicodedata.category(c) in {"Cc", "Cf", "Cs"} else c for c in text)


def split_words(text: str) -> list[str]:
    """Whitespace-separated words, except that "quoted sections" (optionally `-"negated"`)
    stay whole, quotes included. An unclosed quote is an ordinary character."""
    words: list[str] = []
    in_quote = False
    start = 0
    for i, char in enumerate(text):
        if char != '"':
            continue
        if in_quote:
            words.append(text[start : i + 1])
            in_quote = False
            start = i + 1
        else:
            begin = i - 1 if i > 0 and text[i - 1] == "-" else i
            words.extend(text[start:begin].split())
            in_quote = True
            start = begin
    words.extend(text[start:].split())
    return words


def _trim(word: str) -> str:
    word = _PUNCT_START.sub("", word)
    word = _PUNCT_END.sub("", word)
    return _HASHTAG_START.sub("#", word)


def _word_term(word: str) -> Term | None:
    """An unquoted word: punctuation trimmed, a trailing `*` marks a prefix search."""
    word = _trim(word)
    prefix = word.endswith("*")
    if prefix:
        word = _trim(word.rstrip("*"))
    if not tokens(word):
        return None
    return Term((word,), prefix=prefix)


def _phrase_term(quoted: str) -> Term | None:
    inner = quoted[1:-1].strip()
    prefix = inner.endswith("*")
    words = [w for w in (_trim(w.rstrip("*")) for w in inner.split()) if tokens(w)]
    words = words[:MAX_PHRASE_WORDS]
    if not words:
        return None
    return Term(tuple(words), prefix=prefix)


def parse_date(value: str) -> date | None:
    """`YYYY-MM-DD` (zero padding optional); anything else is ignored."""
    m = _DATE.match(value)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _flag(word: str) -> tuple[str, bool, str] | None:
    """(flag name, negated, value) if `word` starts with a known `flag:`, else None."""
    colon = word.find(":")
    if colon <= 0:
        return None
    negated = word.startswith("-")
    name = word[1 if negated else 0 : colon].lower()
    if name not in FLAGS:
        return None
    return name, negated, word[colon + 1 :]


def parse_search(text: str) -> SearchQuery:
    """Parses what a user typed in the search box. Never raises."""
    words = split_words(_clean(text))
    terms: list[Term] = []
    excluded: list[Term] = []
    filters: dict[str, list[str]] = {}
    dates: dict[str, date] = {}

    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        negated = word.startswith("-")
        body = word[1:] if negated else word
        if len(body) >= 2 and body.startswith('"') and body.endswith('"'):
            term = _phrase_term(body)
            if term is not None:
                (excluded if negated else terms).append(term)
            continue
        flag = _flag(word)
        if flag is not None:
            name, flag_negated, value = flag
            if not value and i + 1 < len(words):
                value, skip = words[i + 1], True
            if value:
                if name in {"before", "after", "on"}:
                    if not flag_negated and (day := parse_date(value)) is not None:
                        dates[name] = day
                elif name != "ext":
                    key = ("-" if flag_negated else "") + ("in" if name == "channel" else name)
                    filters.setdefault(key, []).append(value)
                continue
        term = _word_term(word)
        if term is not None:
            (excluded if negated else terms).append(term)

    def names(key: str, strip: str) -> tuple[str, ...]:
        values = (v.lower().lstrip(strip) for v in filters.get(key, []))
        return tuple(dict.fromkeys(v for v in values if v))[:MAX_FLAG_VALUES]

    return SearchQuery(
        terms=tuple(dict.fromkeys(terms))[:MAX_TERMS],
        excluded_terms=tuple(dict.fromkeys(excluded))[:MAX_TERMS],
        from_users=names("from", "@"),
        excluded_users=names("-from", "@"),
        in_channels=names("in", "~"),
        excluded_channels=names("-in", "~"),
        on=dates.get("on"),
        after=dates.get("after"),
        before=dates.get("before"),
    )


# Rendering for the databases


def _tsquery_operand(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery_term(term: Term) -> str:
    """One term for `to_tsquery`: `'a' <-> 'b'` for a phrase, `:*` on each word of a prefix."""
    suffix = ":*" if term.prefix else ""
    parts = [_tsquery_operand(w) for w in term.words]
    if suffix:
        parts[-1] += suffix
    if len(parts) == 1:
        return parts[0]
    return "(" + " <-> ".join(parts) + ")"


def tsquery_text(terms: tuple[Term, ...] | list[Term], any_of: bool = False) -> str:
    """All `terms` for `to_tsquery('english', ...)`, joined by `&` (or `|` with `any_of`)."""
    return (" | " if any_of else " & ").join(tsquery_term(t) for t in terms)


def fts5_term(term: Term) -> str:
    """One term for FTS5: a double-quoted string of tokens is a phrase; `*` after it a prefix.

    The porter tokenizer stems the prefix too, and turns a final `y` into `i` (`deploy` becomes
    `deploi`, no longer a prefix of `deploy`, the stem of `deployment`); so a prefix ending in
    `y` also tries itself without the `y`.
    """
    words = term.tokens
    quoted = '"' + " ".join(words) + '"'
    if not term.prefix:
        return quoted
    if len(words[-1]) >= 3 and words[-1].endswith("y"):
        shorter = '"' + " ".join((*words[:-1], words[-1][:-1])) + '"'
        return f"({quoted} * OR {shorter} *)"
    return quoted + " *"


def fts5_query(terms: tuple[Term, ...] | list[Term], any_of: bool = False) -> str:
    """All `terms` as an FTS5 MATCH expression, joined by AND (or OR with `any_of`)."""
    return (" OR " if any_of else " AND ").join(fts5_term(t) for t in terms)


# Dates


def clamp_tz_offset(seconds: int) -> int:
    return max(-MAX_TZ_OFFSET_SECONDS, min(MAX_TZ_OFFSET_SECONDS, seconds))


def start_of_day_ms(day: date, tz_offset_seconds: int) -> int:
    """Milliseconds since the epoch at local midnight of `day`, local being UTC+offset."""
    return (day.toordinal() - _EPOCH_ORDINAL) * DAY_MS - clamp_tz_offset(tz_offset_seconds) * 1000


def create_at_range(query: SearchQuery, tz_offset_seconds: int) -> tuple[int | None, int | None]:
    """The inclusive `create_at` bounds the date filters give, as Mattermost computes them:
    `on:` is that local day, `after:` starts the next day, `before:` ends the day before."""
    low: list[int] = []
    high: list[int] = []
    if query.on is not None:
        start = start_of_day_ms(query.on, tz_offset_seconds)
        low.append(start)
        high.append(start + DAY_MS - 1)
    if query.after is not None:
        low.append(start_of_day_ms(query.after, tz_offset_seconds) + DAY_MS)
    if query.before is not None:
        high.append(start_of_day_ms(query.before, tz_offset_seconds) - 1)
    return (max(low) if low else None), (min(high) if high else None)


# Matches


def matched_words(message: str, term: Term) -> list[str]:
    """The words of `message` that `term` found, as written in the message.

    Stemming can match words this literal comparison misses (`runs` for `running`); the caller
    falls back to the term itself then.
    """
    words = message.split()
    normalized = [tokens(w) for w in words]
    wanted = list(term.tokens)
    if not wanted:
        return []
    flat: list[tuple[int, str]] = [(i, t) for i, toks in enumerate(normalized) for t in toks]
    found: list[str] = []
    n = len(wanted)
    for start in range(len(flat) - n + 1):
        window = flat[start : start + n]
        ok = all(window[k][1] == wanted[k] for k in range(n - 1))
        last = window[-1][1]
        ok = ok and (last.startswith(wanted[-1]) if term.prefix else last == wanted[-1])
        if ok:
            first, end = window[0][0], window[-1][0]
            text = " ".join(_trim(w) for w in words[first : end + 1])
            if text and text not in found:
                found.append(text)
    return found
