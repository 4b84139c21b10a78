//! Secrets in statement texts: the string literals a statement hands the
//! server as credentials — `CREATE/ALTER ROLE ... PASSWORD '...'`, the
//! options of `CREATE/ALTER USER MAPPING`, the connection string of
//! `CREATE/ALTER SUBSCRIPTION` — are replaced by `'[redacted]'` before a
//! text is recorded in the audit log or shown to approvers.
//!
//! The literals are found in the parse tree (the grammar records where
//! each one starts), their ends by the server's own lexer (`pg_query::scan`;
//! its `scan_tokens` reads a null pointer on a text without tokens), and the result
//! is proven by parsing it again: the same secrets must come back, each
//! now the placeholder. When that cannot be shown (the text does not
//! parse, `standard_conforming_strings` is off, a location is missing),
//! the whole text is withheld instead.

use std::borrow::Cow;

use pg_query::protobuf::{RawStmt, Token};
use pg_query::NodeEnum;

use super::{ParseSettings, StatementFacts};

/// The value a redacted literal reads as.
const PLACEHOLDER: &str = "[redacted]";

/// What replaces each secret literal in a text.
pub const REDACTED: &str = "'[redacted]'";

/// What replaces a quoted identifier in a text that does not parse.
const REDACTED_IDENT: &str = "\"[redacted]\"";

/// What stands for a text whose secrets cannot be isolated.
pub const WITHHELD: &str = "[statement text withheld: it may hand the server a password or connection string that the gateway could not isolate]";

/// Statement kinds that can carry a secret literal.
const CARRIERS: &[&str] = &[
    "create_role",
    "alter_role",
    "create_user_mapping",
    "alter_user_mapping",
    "create_subscription",
    "alter_subscription",
];

/// Whether a text with these facts needs a look (a kind that can carry a
/// secret, a text the gateway could not read, or no facts at all). Cheap:
/// no parsing.
pub fn may_carry_secrets(facts: &[StatementFacts]) -> bool {
    facts.is_empty()
        || facts
            .iter()
            .any(|f| f.kind == "unparsed" || CARRIERS.contains(&f.kind.as_str()))
}

/// `text` as records and approvers see it: each secret literal replaced
/// by [`REDACTED`], or [`WITHHELD`] when they cannot be isolated.
/// `facts`, when known, spare the parse of texts that carry none.
pub fn redact_secrets<'a>(
    text: &'a str,
    settings: ParseSettings,
    facts: Option<&[StatementFacts]>,
) -> Cow<'a, str> {
    if facts.is_some_and(|f| !may_carry_secrets(f)) {
        return Cow::Borrowed(text);
    }
    let Ok(parsed) = pg_query::parse(text, settings.parser_options()) else {
        return unparsed(text, settings);
    };
    let found = secrets(&parsed.protobuf.stmts);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    // The lexer below reads strings as standard_conforming_strings = on
    // does; with it off a backslash could end a literal elsewhere.
    if settings.standard_strings_off || found.iter().any(|s| s.at < 0) {
        return Cow::Borrowed(WITHHELD);
    }
    let Ok(tokens) = pg_query::scan(text).map(|r| r.tokens) else {
        return Cow::Borrowed(WITHHELD);
    };
    let mut spans = Vec::with_capacity(found.len());
    for s in &found {
        let Some(i) = tokens
            .iter()
            .position(|t| t.start == s.at && is_string(t.token))
        else {
            return Cow::Borrowed(WITHHELD);
        };
        // U&'...' UESCAPE '!' is one literal.
        let last = match tokens.get(i + 1..i + 3) {
            Some([u, e]) if token(u.token) == Token::Uescape && is_string(e.token) => i + 2,
            _ => i,
        };
        spans.push((
            tokens[i].start as usize,
            tokens[last].end as usize,
            REDACTED,
        ));
    }
    let Some(out) = replace(text, spans) else {
        return Cow::Borrowed(WITHHELD);
    };
    // Proof: the new text has the same secrets, each now the placeholder.
    let proven = pg_query::parse(&out, settings.parser_options()).is_ok_and(|p| {
        let again = secrets(&p.protobuf.stmts);
        again.len() == found.len() && again.iter().all(|s| s.value == PLACEHOLDER)
    });
    if proven {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(WITHHELD)
    }
}

/// Whether `shown`, what [`redact_secrets`] (or
/// [`redact_secrets_any_settings`]) answered for `text`, differs from it:
/// a text with nothing to hide comes back as itself.
pub fn was_redacted(shown: &str, text: &str) -> bool {
    !std::ptr::eq(shown, text)
}

/// [`redact_secrets`] of a text whose parser settings are not known (a
/// refusal recorded before the text was decided): it must come out the
/// same with `standard_conforming_strings` on and off, else it is
/// withheld.
pub fn redact_secrets_any_settings(text: &str) -> Cow<'_, str> {
    let on = redact_secrets(text, ParseSettings::default(), None);
    // The setting only changes what a backslash in a literal means.
    if !text.contains('\\') {
        return on;
    }
    let off = ParseSettings {
        standard_strings_off: true,
    };
    if on == redact_secrets(text, off, None) {
        on
    } else {
        Cow::Borrowed(WITHHELD)
    }
}

/// A text the parser refuses: nothing says what its literals are for
/// (`PASSWORD "x"`, `IDENTIFIED BY 'x'`), so every literal and quoted
/// identifier in it is redacted.
fn unparsed(text: &str, settings: ParseSettings) -> Cow<'_, str> {
    let Ok(tokens) = pg_query::scan(text).map(|r| r.tokens) else {
        return Cow::Borrowed(WITHHELD);
    };
    let spans: Vec<(usize, usize, &str)> = tokens
        .iter()
        .filter_map(|t| {
            let (start, end) = (t.start as usize, t.end as usize);
            let kind = token(t.token);
            if is_string(t.token) || matches!(kind, Token::Bconst | Token::Xconst) {
                return Some((start, end, REDACTED));
            }
            let quoted = text
                .get(start..end)
                .is_some_and(|s| s.starts_with('"') || s.starts_with("U&") || s.starts_with("u&"));
            (matches!(kind, Token::Ident | Token::Uident) && quoted).then_some((
                start,
                end,
                REDACTED_IDENT,
            ))
        })
        .collect();
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    if settings.standard_strings_off {
        return Cow::Borrowed(WITHHELD);
    }
    replace(text, spans).map_or(Cow::Borrowed(WITHHELD), Cow::Owned)
}

fn token(t: i32) -> Token {
    Token::try_from(t).unwrap_or(Token::Nul)
}

fn is_string(t: i32) -> bool {
    matches!(token(t), Token::Sconst | Token::Usconst)
}

/// `text` with each span (byte offsets, ascending after sorting, not
/// overlapping) replaced by its stand-in.
fn replace(text: &str, mut spans: Vec<(usize, usize, &str)>) -> Option<String> {
    spans.sort_unstable();
    spans.dedup();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, with) in spans {
        if start < pos || end <= start {
            return None;
        }
        out.push_str(text.get(pos..start)?);
        out.push_str(with);
        pos = end;
    }
    out.push_str(text.get(pos..)?);
    Some(out)
}

/// A secret literal: where it starts (-1: unknown) and its value.
struct Secret {
    at: i32,
    value: String,
}

/// The secret literals of parsed statements, read from the tree.
fn secrets(stmts: &[RawStmt]) -> Vec<Secret> {
    let mut out = Vec::new();
    for raw in stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::CreateRoleStmt(s) => options(&s.options, Some("password"), &mut out),
            NodeEnum::AlterRoleStmt(s) => options(&s.options, Some("password"), &mut out),
            // A user mapping's options exist to carry credentials.
            NodeEnum::CreateUserMappingStmt(s) => options(&s.options, None, &mut out),
            NodeEnum::AlterUserMappingStmt(s) => options(&s.options, None, &mut out),
            NodeEnum::CreateSubscriptionStmt(s) if !s.conninfo.is_empty() => out.push(Secret {
                at: s.conninfo_location,
                value: s.conninfo.clone(),
            }),
            NodeEnum::AlterSubscriptionStmt(s) if !s.conninfo.is_empty() => out.push(Secret {
                at: s.conninfo_location,
                value: s.conninfo.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// String arguments of `opts` (only those named `only`, if given).
fn options(opts: &[pg_query::Node], only: Option<&str>, out: &mut Vec<Secret>) {
    for o in opts {
        let Some(NodeEnum::DefElem(d)) = &o.node else {
            continue;
        };
        if only.is_some_and(|name| d.defname != name) {
            continue;
        }
        let value = match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
            Some(NodeEnum::String(s)) => s.sval.clone(),
            // PASSWORD NULL, DROP option: nothing to hide.
            None => continue,
            // Any other argument: hidden too, or withheld if it has no
            // location.
            Some(_) => String::new(),
        };
        out.push(Secret {
            at: d.arg_location,
            value,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        redact_secrets(text, ParseSettings::default(), None).into_owned()
    }

    #[test]
    fn role_passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(
            r("ALTER ROLE app WITH PASSWORD 'hunter2' VALID UNTIL '2030-01-01'"),
            "ALTER ROLE app WITH PASSWORD '[redacted]' VALID UNTIL '2030-01-01'"
        );
        assert_eq!(
            r("create user bob login encrypted password E'it\\'s' /* c */"),
            "create user bob login encrypted password '[redacted]' /* c */"
        );
        assert_eq!(
            r("CREATE ROLE x PASSWORD $q$a'b$q$; SELECT 'kept'"),
            "CREATE ROLE x PASSWORD '[redacted]'; SELECT 'kept'"
        );
        assert_eq!(
            r("ALTER USER x PASSWORD U&'d\\0061t' UESCAPE '\\'"),
            "ALTER USER x PASSWORD '[redacted]'"
        );
        // Adjacent literals separated by a newline are one string.
        assert_eq!(
            r("ALTER ROLE x PASSWORD 'one'\n'two'"),
            "ALTER ROLE x PASSWORD '[redacted]'"
        );
        assert_eq!(
            r("ALTER ROLE x PASSWORD NULL"),
            "ALTER ROLE x PASSWORD NULL"
        );
        assert_eq!(
            r("ALTER ROLE x SET search_path = 'a'"),
            "ALTER ROLE x SET search_path = 'a'"
        );
    }

    #[test]
    fn user_mappings_and_subscriptions_are_redacted() {
        assert_eq!(
            r("CREATE USER MAPPING FOR me SERVER s OPTIONS (user 'u', password 'p')"),
            "CREATE USER MAPPING FOR me SERVER s OPTIONS (user '[redacted]', password '[redacted]')"
        );
        assert_eq!(
            r("ALTER USER MAPPING FOR me SERVER s OPTIONS (SET password 'p', DROP user)"),
            "ALTER USER MAPPING FOR me SERVER s OPTIONS (SET password '[redacted]', DROP user)"
        );
        assert_eq!(
            r("CREATE SUBSCRIPTION s CONNECTION 'host=h password=p' PUBLICATION p WITH (connect = false)"),
            "CREATE SUBSCRIPTION s CONNECTION '[redacted]' PUBLICATION p WITH (connect = false)"
        );
        assert_eq!(
            r("ALTER SUBSCRIPTION s CONNECTION 'password=p'"),
            "ALTER SUBSCRIPTION s CONNECTION '[redacted]'"
        );
    }

    #[test]
    fn what_cannot_be_isolated_is_withheld_or_fully_redacted() {
        let off = ParseSettings {
            standard_strings_off: true,
        };
        assert_eq!(
            redact_secrets("ALTER ROLE x PASSWORD 'a\\'b'", off, None),
            WITHHELD
        );
        // Does not parse: every literal and quoted identifier goes.
        assert_eq!(
            r("ALTER ROLE x PASSWORD 'secret' oops 'more'"),
            "ALTER ROLE x PASSWORD '[redacted]' oops '[redacted]'"
        );
        assert_eq!(
            r(r#"ALTER ROLE app PASSWORD "hunter2""#),
            r#"ALTER ROLE app PASSWORD "[redacted]""#
        );
        assert_eq!(
            r("CREATE USER app IDENTIFIED BY 'hunter2' X'ff' B'01'"),
            "CREATE USER app IDENTIFIED BY '[redacted]' '[redacted]' '[redacted]'"
        );
        assert_eq!(r("SELEC a FROM t"), "SELEC a FROM t");
        // Parser settings unknown: the same either way, or withheld.
        assert_eq!(
            redact_secrets_any_settings("ALTER ROLE x PASSWORD 'p'"),
            "ALTER ROLE x PASSWORD '[redacted]'"
        );
        assert_eq!(
            redact_secrets_any_settings("DELETE FROM t WHERE a = 'x'"),
            "DELETE FROM t WHERE a = 'x'"
        );
        assert_eq!(
            redact_secrets_any_settings(r"ALTER ROLE app PASSWORD 'x\'correct horse\'y'"),
            WITHHELD
        );
        // An unterminated literal cannot be scanned.
        assert_eq!(r("ALTER ROLE x PASSWORD 'secret"), WITHHELD);
    }

    #[test]
    fn fingerprints_do_not_depend_on_secrets() {
        let fp = |t: &str| {
            super::super::analyze(t, ParseSettings::default())[0]
                .fingerprint
                .clone()
        };
        for (a, b) in [
            (
                "ALTER ROLE app PASSWORD 'a'",
                "ALTER ROLE app PASSWORD 'hunter2'",
            ),
            (
                "CREATE USER MAPPING FOR me SERVER s OPTIONS (user 'u', password 'a')",
                "CREATE USER MAPPING FOR me SERVER s OPTIONS (user 'v', password 'b')",
            ),
            (
                "ALTER SUBSCRIPTION s CONNECTION 'password=a'",
                "ALTER SUBSCRIPTION s CONNECTION 'password=b'",
            ),
        ] {
            assert_eq!(fp(a), fp(b), "{a}");
        }
        // The rest of the statement still counts.
        assert_ne!(
            fp("ALTER ROLE app PASSWORD 'a'"),
            fp("ALTER ROLE other PASSWORD 'a'")
        );
        assert_ne!(
            fp("ALTER ROLE app VALID UNTIL '2030-01-01'"),
            fp("ALTER ROLE app VALID UNTIL '2031-01-01'")
        );
    }

    #[test]
    fn texts_of_other_kinds_are_not_parsed_again() {
        let facts = super::super::analyze("SELECT 'password'", ParseSettings::default());
        assert!(!may_carry_secrets(&facts));
        assert!(matches!(
            redact_secrets("SELECT 'password'", ParseSettings::default(), Some(&facts)),
            Cow::Borrowed(_)
        ));
        let facts = super::super::analyze("ALTER ROLE x PASSWORD 'p'", ParseSettings::default());
        assert!(may_carry_secrets(&facts));
        assert_eq!(
            redact_secrets(
                "ALTER ROLE x PASSWORD 'p'",
                ParseSettings::default(),
                Some(&facts)
            ),
            "ALTER ROLE x PASSWORD '[redacted]'"
        );
    }
}
