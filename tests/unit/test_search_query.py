"""The search-language parser and the full-text query renderers, without a database server."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.services.search_query import (
    DAY_MS,
    MAX_TERMS,
    SearchQuery,
    Term,
    create_at_range,
    fts5_query,
    matched_words,
    parse_search,
    split_words,
    start_of_day_ms,
    tsquery_text,
)


def words(query: SearchQuery) -> list[tuple[str, ...]]:
    return [t.words for t in query.terms]


def test_plain_words_are_separate_terms() -> None:
    q = parse_search("hello   world")
    assert words(q) == [("hello",), ("world",)]
    assert tsquery_text(q.terms) == "'hello' & 'world'"
    assert tsquery_text(q.terms, any_of=True) == "'hello' | 'world'"
    assert fts5_query(q.terms) == '"hello" AND "world"'
    assert fts5_query(q.terms, any_of=True) == '"hello" OR "world"'


def test_quoted_phrase_is_one_term() -> None:
    q = parse_search('say "hello big world" now')
    assert words(q) == [("say",), ("hello", "big", "world"), ("now",)]
    assert tsquery_text(q.terms[1:2]) == "('hello' <-> 'big' <-> 'world')"
    assert fts5_query(q.terms[1:2]) == '"hello big world"'


def test_exclusions_of_words_and_phrases() -> None:
    q = parse_search('apple -banana -"cherry pie"')
    assert words(q) == [("apple",)]
    assert [t.words for t in q.excluded_terms] == [("banana",), ("cherry", "pie")]


def test_trailing_star_is_prefix() -> None:
    q = parse_search('deplo* "release cand*"')
    assert q.terms == (Term(("deplo",), prefix=True), Term(("release", "cand"), prefix=True))
    assert tsquery_text(q.terms) == "'deplo':* & ('release' <-> 'cand':*)"
    assert fts5_query(q.terms) == '"deplo" * AND "release cand" *'


def test_sqlite_prefix_ending_in_y_survives_stemming() -> None:
    q = parse_search('deploy* "we deploy*" y*')
    assert fts5_query(q.terms) == (
        '("deploy" * OR "deplo" *) AND ("we deploy" * OR "we deplo" *) AND "y" *'
    )


def test_flags() -> None:
    q = parse_search(
        "from:@Alice -from:bob in:Town-Square channel:~dev -in:random "
        "on:2024-02-03 after:2024-1-2 before:2024-12-31 ext:pdf"
    )
    assert q.terms == ()
    assert q.from_users == ("alice",)
    assert q.excluded_users == ("bob",)
    assert q.in_channels == ("town-square", "dev")
    assert q.excluded_channels == ("random",)
    assert (q.on, q.after, q.before) == (date(2024, 2, 3), date(2024, 1, 2), date(2024, 12, 31))
    assert not q.is_empty


def test_flag_with_empty_value_takes_the_next_word() -> None:
    q = parse_search("from: carol hello")
    assert q.from_users == ("carol",)
    assert words(q) == [("hello",)]


def test_flag_names_are_case_insensitive_and_unknown_flags_are_words() -> None:
    q = parse_search("FROM:dave http://example.com/x")
    assert q.from_users == ("dave",)
    assert words(q) == [("http://example.com/x",)]


def test_dangling_flag_is_a_word() -> None:
    assert words(parse_search("from:")) == [("from",)]


def test_invalid_dates_are_ignored() -> None:
    q = parse_search("on:2024-02-30 before:yesterday after:0000-01-01 x")
    assert (q.on, q.before, q.after) == (None, None, None)


def test_punctuation_is_trimmed_and_hashtags_kept() -> None:
    q = parse_search('"(hello," ##release! ...')
    assert words(q) == [("hello",), ("#release",)]
    assert fts5_query(q.terms) == '"hello" AND "release"'


def test_words_without_letters_or_digits_are_dropped() -> None:
    q = parse_search('*** --- "" -"" "  " # ! ?')
    assert q.terms == () and q.excluded_terms == ()
    assert q.is_empty


def test_exclusions_alone_select_nothing() -> None:
    assert parse_search("-foo").is_empty
    assert not parse_search("-foo from:bob").is_empty


def test_unbalanced_quote_is_an_ordinary_character() -> None:
    q = parse_search('"unfinished phrase here')
    assert words(q) == [("unfinished",), ("phrase",), ("here",)]


def test_split_words_keeps_negated_quotes_together() -> None:
    assert split_words('a -"b c" "d" e') == ["a", '-"b c"', '"d"', "e"]


def test_hyphenated_word_renders_as_phrase_for_sqlite() -> None:
    q = parse_search("foo-bar don't")
    assert fts5_query(q.terms) == '"foo bar" AND "don t"'
    assert tsquery_text(q.terms) == "'foo-bar' & 'don''t'"


def test_tsquery_operands_are_escaped() -> None:
    q = parse_search("it's back\\slash")
    assert tsquery_text(q.terms) == "'it''s' & 'back\\\\slash'"


def test_control_characters_and_nul_are_removed() -> None:
    q = parse_search("a\x00b\u200bc")
    assert words(q) == [("a",), ("b",), ("c",)]


def test_unicode_words() -> None:
    q = parse_search("日本語 café Ǆemal")
    assert fts5_query(q.terms) == '"日本語" AND "café" AND "ǆemal"'


def test_term_count_is_capped() -> None:
    q = parse_search(" ".join(f"w{i}" for i in range(100)))
    assert len(q.terms) == MAX_TERMS


def test_duplicate_terms_collapse() -> None:
    assert words(parse_search("a a A")) == [("a",), ("A",)]


def test_date_range_follows_mattermost() -> None:
    day = date(2024, 3, 10)
    start = start_of_day_ms(day, 0)
    assert start == 1710028800000
    assert create_at_range(parse_search("on:2024-03-10"), 0) == (start, start + DAY_MS - 1)
    assert create_at_range(parse_search("after:2024-03-10"), 0) == (start + DAY_MS, None)
    assert create_at_range(parse_search("before:2024-03-10"), 0) == (None, start - 1)
    # UTC+2: local midnight is two hours earlier in UTC.
    assert create_at_range(parse_search("on:2024-03-10"), 7200)[0] == start - 7_200_000
    # Absurd offsets are clamped rather than overflowing.
    assert create_at_range(parse_search("on:2024-03-10"), 10**12)[0] == start - 14 * 3_600_000


def test_matched_words() -> None:
    message = "Deploying the Release-Candidate today; deploy again!"
    assert matched_words(message, Term(("deploy",), prefix=True)) == ["Deploying", "deploy"]
    assert matched_words(message, Term(("release", "candidate"))) == ["Release-Candidate"]
    assert matched_words(message, Term(("today",))) == ["today"]
    assert matched_words(message, Term(("absent",))) == []


@pytest.mark.parametrize(
    "text",
    ['"', '""""', '-"', "-", ":", "from:", "in: ", '"a" "b', "\\", "'", "*a*b*", "a:*", "(a | b)"],
)
def test_odd_input_never_raises(text: str) -> None:
    q = parse_search(text)
    for term in (*q.terms, *q.excluded_terms):
        assert term.tokens


def _fts5() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(message, tokenize='porter unicode61')")
    conn.execute("INSERT INTO f(message) VALUES ('hello world'), ('foo-bar baz')")
    return conn


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.booleans())
def test_any_input_renders_valid_queries(text: str, any_of: bool) -> None:
    q = parse_search(text)
    conn = _fts5()
    try:
        for terms in (q.terms, q.excluded_terms):
            if not terms:
                continue
            conn.execute("SELECT rowid FROM f WHERE f MATCH ?", (fts5_query(terms, any_of),))
            # An empty quoted operand is the one thing to_tsquery cannot parse.
            assert all(term.tokens and all(term.words) for term in terms)
            assert tsquery_text(terms, any_of)
    finally:
        conn.close()


@given(st.text(alphabet=st.sampled_from('ab "-*:#'), max_size=40))
def test_operator_soup_parses(text: str) -> None:
    parse_search(text)
