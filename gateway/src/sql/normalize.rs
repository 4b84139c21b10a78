//! Literal-insensitive statement keys.
//!
//! `normalize` rewrites a SQL text with every string and numeric literal
//! replaced by a placeholder of its token class (`\s` string, `\i` integer
//! that fits int4, `\f` other number), keeping every other byte. Two texts
//! with the same key differ only in literal values, so the parser derives
//! the same tree shape for both. A placeholder starts with a backslash,
//! which the tokenizer refuses anywhere else outside quoted identifiers
//! and comments, so no text can spell one. The tokenizer follows the
//! Postgres lexer for the cases it accepts and gives up (returns `None`)
//! on anything it does not model exactly: escape strings, bit/hex/unicode
//! strings, nested comments, backslashes, vertical tabs, non-ASCII bytes
//! outside literals, literals continued across a comment, numbers the
//! lexer splits or joins differently (`1e5.5`, `1e+5_0`), `..`, the
//! `float(p)` type (whose literal picks the type), and
//! `standard_conforming_strings = off`.

use std::collections::HashMap;

use super::{analyze_with, ParseSettings, StatementFacts};
use crate::catalog::Catalog;

/// Placeholder of a string literal.
const STRING: &str = "\\s";
/// Placeholder of an integer literal that fits int4.
const INT: &str = "\\i";
/// Placeholder of any other numeric literal.
const FLOAT: &str = "\\f";

/// The literal-insensitive key of `sql`, or `None` if the text uses lexical
/// features this tokenizer does not model.
pub fn normalize(sql: &str) -> Option<String> {
    // A vertical tab is whitespace to pg_query's lexer, not to every
    // server's.
    if sql.contains('\x0B') {
        return None;
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                // A string literal; '' is an escaped quote. A prefix letter
                // (E, B, X, U&, N) was rejected below as an identifier char
                // followed by a quote.
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return None,
                        Some(b'\'') if b.get(j + 1) == Some(&b'\'') => j += 2,
                        Some(b'\'') => break,
                        Some(b'\\') => return None,
                        Some(_) => j += 1,
                    }
                }
                // Adjacent literals separated by a newline (and maybe `--`
                // comments) are concatenated by the lexer; refuse rather
                // than model it.
                if continues(&b[j + 1..]) {
                    return None;
                }
                out.push_str(STRING);
                i = j + 1;
            }
            b'"' => {
                let j = i + 1 + b[i + 1..].iter().position(|&c| c == b'"')?;
                out.push_str(&sql[i..=j]);
                i = j + 1;
            }
            b'$' => {
                // $1 parameter, or a dollar-quoted string $tag$...$tag$.
                let j = i + 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if j > i + 1 {
                    out.push_str(&sql[i..j]);
                    i = j;
                    continue;
                }
                let tag_end = i + 1 + b[i + 1..].iter().position(|&c| c == b'$')?;
                let tag = &sql[i..=tag_end];
                if !tag[1..tag.len() - 1]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    return None;
                }
                let body_end = tag_end + 1 + sql[tag_end + 1..].find(tag)?;
                out.push_str(STRING);
                i = body_end + tag.len();
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                // The lexer ends a comment at either newline character.
                let j = b[i..]
                    .iter()
                    .position(|&c| matches!(c, b'\n' | b'\r'))
                    .map_or(b.len(), |p| i + p);
                out.push_str(&sql[i..j]);
                i = j;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = i + 2 + sql[i + 2..].find("*/")?;
                // A `/*` anywhere before the end nests, even one whose `*`
                // is the end's (`/*/*/`: the lexer reads two openings).
                if sql[i + 2..end + 1].contains("/*") {
                    return None;
                }
                out.push_str(&sql[i..end + 2]);
                i = end + 2;
            }
            b'0'..=b'9' | b'.' if c != b'.' || b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let j = i + b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_'))
                    .count();
                let tok = &sql[i..j];
                // Exponents with a sign (1e-5) continue the number.
                let (tok, j) = if (tok.ends_with('e') || tok.ends_with('E'))
                    && matches!(b.get(j), Some(b'+' | b'-'))
                {
                    let k = j + 1 + b[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    // Junk after it (`1e+5_0`): read differently by
                    // different servers.
                    if b.get(k)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.'))
                    {
                        return None;
                    }
                    (&sql[i..k], k)
                } else {
                    (tok, j)
                };
                // The lexer ends a number at a `.` after its exponent
                // (`1e5.5` is `1e5` then `.5`) or at `..`.
                if tok.contains("..")
                    || tok.find(['e', 'E']).is_some_and(|e| tok[e..].contains('.'))
                {
                    return None;
                }
                if tok.bytes().all(|c| c.is_ascii_digit()) {
                    out.push_str(if tok.parse::<i32>().is_ok() {
                        INT
                    } else {
                        FLOAT
                    });
                } else if tok
                    .bytes()
                    .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
                    && tok.bytes().filter(|c| *c == b'.').count() <= 1
                {
                    out.push_str(FLOAT);
                } else {
                    // Hex/octal/binary or underscores: not modelled.
                    return None;
                }
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let j = i + b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$'))
                    .count();
                // A prefixed string (E'..', B'..', X'..', N'..', U&'..') or
                // a prefixed identifier (U&"..").
                if matches!(b.get(j), Some(b'\'' | b'&')) {
                    return None;
                }
                // float(p): the literal p chooses float4 or float8.
                if sql[i..j].eq_ignore_ascii_case("float")
                    && b[j..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'(')
                {
                    return None;
                }
                out.push_str(&sql[i..j]);
                i = j;
            }
            b'.' if b.get(i + 1) == Some(&b'.') => return None,
            c if c.is_ascii() && c != b'\\' => {
                out.push(c as char);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Whether a string literal followed by `rest` continues (the lexer's
/// `quotecontinue`: whitespace and `--` comments with a newline among
/// them, then a quote).
fn continues(rest: &[u8]) -> bool {
    let mut i = 0;
    let mut newline = false;
    loop {
        match rest.get(i) {
            Some(b'\n' | b'\r') => {
                newline = true;
                i += 1;
            }
            Some(b' ' | b'\t' | b'\x0C') => i += 1,
            Some(b'-') if rest.get(i + 1) == Some(&b'-') => {
                i += rest[i..]
                    .iter()
                    .position(|c| matches!(c, b'\n' | b'\r'))
                    .unwrap_or(rest.len() - i);
            }
            Some(b'\'') => return newline,
            _ => return false,
        }
    }
}

/// Per-session cache of statement facts by literal-insensitive key, for
/// statements whose facts provably do not depend on literal values:
/// a single SELECT/INSERT/UPDATE/DELETE without a constant LIMIT and
/// without `set_config`, parsed with standard-conforming strings. A hit
/// skips the parse; the policy still decides on the exact input.
#[derive(Default)]
pub struct FactsCache {
    map: HashMap<String, StatementFacts>,
}

/// Templates kept per session before the cache is cleared.
const TEMPLATE_LIMIT: usize = 512;

/// The text a single statement's facts carry (what [`super::analyze`]
/// slices out for a one-statement message).
pub(crate) fn single_text(sql: &str) -> &str {
    let t = sql.trim();
    t.strip_suffix(';').unwrap_or(t).trim_end()
}

impl FactsCache {
    /// Facts for `sql`, from the cache when a literal-only variant was
    /// analysed before.
    pub fn analyze(&mut self, sql: &str, settings: ParseSettings) -> Vec<StatementFacts> {
        self.analyze_keyed(sql, settings, &Catalog::offline()).0
    }

    /// Forgets every template (the catalog they were analysed with
    /// changed).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Like [`FactsCache::analyze`], also returning the literal template
    /// key when the facts provably do not depend on literal values (texts
    /// with the same key have the same facts apart from `text`). The cache
    /// must be cleared when `cat` changes.
    pub fn analyze_keyed(
        &mut self,
        sql: &str,
        settings: ParseSettings,
        cat: &Catalog,
    ) -> (Vec<StatementFacts>, Option<String>) {
        let analyze = |sql: &str| analyze_with(sql, settings, cat);
        if settings.standard_strings_off {
            return (analyze(sql), None);
        }
        let Some(key) = normalize(sql) else {
            return (analyze(sql), None);
        };
        if let Some(tpl) = self.map.get(&key) {
            let mut facts = tpl.clone();
            facts.text = single_text(sql).to_string();
            return (vec![facts], Some(key));
        }
        let facts = analyze(sql);
        if let [f] = facts.as_slice() {
            let literal_free = matches!(f.kind.as_str(), "select" | "insert" | "update" | "delete")
                && f.limit.is_none()
                && f.parse_error.is_none()
                && !f.functions.iter().any(|n| n == "set_config")
                && f.text == single_text(sql);
            if literal_free {
                if self.map.len() >= TEMPLATE_LIMIT {
                    self.map.clear();
                }
                self.map.insert(key.clone(), f.clone());
                return (facts, Some(key));
            }
        }
        (facts, None)
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize, FactsCache, FLOAT, INT, STRING};
    use crate::sql::{analyze, ParseSettings, StatementFacts};

    fn facts(sql: &str) -> StatementFacts {
        analyze(sql, ParseSettings::default()).remove(0)
    }

    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            normalize("SELECT a FROM t WHERE id = 12 AND n = 'x''y' AND f = 1.5e-3 AND p = $1")
                .as_deref(),
            Some(r"SELECT a FROM t WHERE id = \i AND n = \s AND f = \f AND p = $1")
        );
        assert_eq!(
            normalize("select 99999999999, t1.c2 from t1").as_deref(),
            Some(r"select \f, t1.c2 from t1")
        );
        assert_eq!(
            normalize("select $q$it's$q$ -- 42\n").as_deref(),
            Some("select \\s -- 42\n")
        );
        assert_eq!(
            normalize(r#"select "col 1" from "T""#).as_deref(),
            Some(r#"select "col 1" from "T""#)
        );
    }

    #[test]
    fn a_comment_ends_at_a_carriage_return_as_in_the_server() {
        // The server ends `--` at \r: the quote after it opens a literal
        // (here one hiding an ALTER ROLE between two SELECTs).
        let one = "SELECT --\r'\n' || ' --'\n";
        let three = "SELECT --\r'\n'; ALTER ROLE postgres PASSWORD $$p$$; SELECT ' --'\n";
        assert_eq!(analyze(three, ParseSettings::default()).len(), 3);
        assert_ne!(normalize(one), normalize(three));
        let mut cache = super::FactsCache::default();
        cache.analyze(one, ParseSettings::default());
        assert_eq!(cache.analyze(three, ParseSettings::default()).len(), 3);
        // Adjacent literals separated by \r are one literal: refused.
        assert_eq!(normalize("select 'a'\r'b'"), None);
    }

    /// Pairs found by an adversarial search: the first text is harmless,
    /// the second is read otherwise by the server; they must not share a
    /// key (or either has none).
    #[test]
    fn texts_the_lexer_reads_differently_do_not_share_a_key() {
        let d = ParseSettings::default();
        for (a, b) in [
            // `/*/*/` opens two comments.
            (
                "SELECT 1 /*/*/ '*/' */",
                "SELECT 1 /*/*/ '*/*/; DELETE FROM t; SELECT 2 /*' */",
            ),
            // A text cannot spell a placeholder.
            (
                "delete from t where ?s = ?s",
                "delete from t where 'x' = 'x'",
            ),
            ("select *, ?sfrom secrets", "select *, 'x'from secrets"),
            // A `--` comment between literals still continues them.
            ("select $$a$$ --c\n'b'", "select 'a' --c\n'b'"),
            ("select 'a'\n--c\n$$b$$", "select 'a'\n--c\n'b'"),
            // Vertical tabs, numbers split at `.` or joined with `_`, `..`.
            ("select $$a$$\n\x0B'b'", "select 'a'\n\x0B'b'"),
            ("select 1.5", "select 1e5.5"),
            ("select 1e+5 _0", "select 1e+5_0"),
            ("select x.2", "select x..2"),
            // float(p) is float4 or float8 by its literal.
            ("select 1::float(10)", "select 1::float(30)"),
        ] {
            let (ka, kb) = (normalize(a), normalize(b));
            assert!(
                ka.is_none() || kb.is_none() || ka != kb,
                "{a:?} / {b:?}: {ka:?}"
            );
            let mut cache = FactsCache::default();
            cache.analyze(a, d);
            assert_eq!(cache.analyze(b, d), analyze(b, d), "{b:?}");
        }
    }

    #[test]
    fn lexical_features_not_modelled_have_no_key() {
        for sql in [
            r"select 'a\b'",
            "select E'a'",
            "select B'01'",
            "select /* a /* b */ c */ 1",
            "select 1 /*/*/ */",
            "select 'a' --c\n'b'",
            "select 'a'\r'b'",
            "select\x0B1",
            "select 1e5.5",
            "select 1e+5_0",
            "select 1_000",
            "select a..b",
            "select 1::float(10)",
            "select 1::FLOAT (30)",
        ] {
            assert_eq!(normalize(sql), None, "{sql:?}");
        }
        assert!(normalize("select 1::float8, 'a' -- c\n").is_some());
    }

    #[test]
    fn cache_hit_equals_fresh_analysis() {
        let mut cache = super::FactsCache::default();
        for sql in [
            "select abalance from pgbench_accounts where aid = 1;",
            "select abalance from pgbench_accounts where aid = 2;",
            "update t set a = 'x' where id = 3",
            "update t set a = 'yyy' where id = 30",
            "select * from t limit 5",
            "select * from t limit 6",
            "select set_config('work_mem', '1MB', false)",
            "select set_config('role', 'admin', false)",
        ] {
            assert_eq!(
                cache.analyze(sql, ParseSettings::default()),
                analyze(sql, ParseSettings::default()),
                "{sql}"
            );
        }
        assert_eq!(
            cache.map.len(),
            2,
            "only the literal-free statements are templates"
        );
    }

    /// Every corpus statement, then a variant with other literal values:
    /// facts from the cache equal a fresh analysis of the variant.
    #[test]
    fn corpus_variants_from_cache_equal_fresh_analysis() {
        let mut hits = 0;
        for sql in crate::sql::corpus_tests::corpus_sql() {
            let Some(key) = normalize(sql) else { continue };
            let variant = key
                .replace(INT, "7")
                .replace(FLOAT, "7.5")
                .replace(STRING, "'zz'");
            assert_eq!(normalize(&variant).as_ref(), Some(&key), "{sql}");
            let mut cache = super::FactsCache::default();
            cache.analyze(sql, ParseSettings::default());
            hits += usize::from(cache.map.contains_key(&key));
            let cached = cache.analyze(&variant, ParseSettings::default());
            assert_eq!(
                cached,
                analyze(&variant, ParseSettings::default()),
                "{sql} → {variant}"
            );
        }
        assert!(hits > 30, "{hits}");
    }

    #[test]
    fn refuses_what_it_does_not_model() {
        for sql in [
            "select E'a\\nb'",
            "select B'101'",
            "select X'ff'",
            "select U&'d\\0061t'",
            "select 'a\\'",
            "select 0x1F",
            "select 1_000",
            "select /* a /* b */ c */ 1",
            "select 'a'\n'b'",
            "select 'unterminated",
            "select 'ü' || ü",
        ] {
            assert_eq!(normalize(sql), None, "{sql}");
        }
    }

    /// Texts with the same key have the same facts apart from the text.
    #[test]
    fn same_key_same_facts() {
        let pairs = [
            (
                "select abalance from pgbench_accounts where aid = 1",
                "select abalance from pgbench_accounts where aid = 77",
            ),
            (
                "update t set a = 'x' where id = 3",
                "update t set a = 'yy' where id = 4",
            ),
            (
                "delete from t where id in (1, 2)",
                "delete from t where id in (3, 4)",
            ),
            (
                "insert into t (a, b) values (1, 'q')",
                "insert into t (a, b) values (2, 'r')",
            ),
            ("select * from t where 1 = 1", "select * from t where 2 = 3"),
        ];
        for (a, b) in pairs {
            assert_eq!(normalize(a), normalize(b), "{a} / {b}");
            let (mut fa, mut fb) = (facts(a), facts(b));
            fa.text.clear();
            fb.text.clear();
            assert_eq!(fa, fb, "{a} / {b}");
        }
        assert_ne!(
            normalize("fetch 1 from c"),
            normalize("fetch 99999999999 from c")
        );
    }
}
