//! The soundness oracle's corpus: a fixture schema full of code that writes
//! (user functions reached by attribute notation, a function shadowing a
//! built-in, a mislabelled STABLE function, a view, a row security policy,
//! an operator and a domain check that write), and a seeded generator of
//! statements: every built-in function of `pg_proc` called with sample
//! arguments of its types, in many syntactic positions, plus attribute
//! notation, casts, operators, CTEs, cursors, COPY, EXPLAIN, text that
//! the lexer reads differently with `standard_conforming_strings` off and
//! text in client encodings whose second bytes can be a backslash.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Fixture, run once as the database owner.
pub const FIXTURE: &str = r#"
CREATE SCHEMA oracle;
CREATE SEQUENCE oracle.s1;
CREATE TABLE oracle.t1 (a int, b text, c int[]);
INSERT INTO oracle.t1 VALUES (1, 'x', ARRAY[1]), (2, 'y', ARRAY[2]);
CREATE TABLE oracle.log (n int);
CREATE FUNCTION oracle.w_touch() RETURNS int LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (1); RETURN 1; END$$;
CREATE FUNCTION public.w_attr(r oracle.t1) RETURNS int LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (r.a); RETURN 1; END$$;
CREATE FUNCTION public.b(r oracle.t1) RETURNS int LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (r.a); RETURN 1; END$$;
CREATE FUNCTION oracle.s_touch(x int) RETURNS boolean LANGUAGE sql STABLE
  AS $$SELECT nextval('oracle.s1') > 0$$;
CREATE FUNCTION public.lower(x int) RETURNS int LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (x); RETURN x; END$$;
CREATE VIEW oracle.v_touch AS SELECT oracle.w_touch() AS x;
CREATE VIEW oracle.v_nested AS SELECT x FROM oracle.v_touch;
CREATE TABLE oracle.rls_t (a int);
INSERT INTO oracle.rls_t VALUES (1);
ALTER TABLE oracle.rls_t ENABLE ROW LEVEL SECURITY;
ALTER TABLE oracle.rls_t FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON oracle.rls_t USING (oracle.w_touch() > 0);
CREATE FUNCTION oracle.w_eq(int, int) RETURNS boolean LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES ($1); RETURN $1 = $2; END$$;
CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = oracle.w_eq);
CREATE FUNCTION oracle.w_check(text) RETURNS boolean LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (1); RETURN true; END$$;
CREATE DOMAIN oracle.dom_touch AS text CHECK (oracle.w_check(VALUE));
CREATE TYPE oracle.pair AS (x int, y int);
CREATE TABLE oracle.t2 (p oracle.pair);
INSERT INTO oracle.t2 VALUES (ROW(1, 2));
CREATE FUNCTION public.w_pair(p oracle.pair) RETURNS int LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (p.x); RETURN 1; END$$;
CREATE FUNCTION oracle.w_sf(state int, v int) RETURNS int LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (v); RETURN coalesce(state, 0) + v; END$$;
CREATE AGGREGATE oracle.w_agg(int) (SFUNC = oracle.w_sf, STYPE = int);
CREATE DOMAIN oracle.dom2 AS oracle.dom_touch;
CREATE TYPE oracle.comp AS (a oracle.dom_touch);
SELECT lo_create(4242);
"#;

/// Objects that make common operators and casts run user code (a user
/// `=` and an implicit cast to text for an enum, a cast to json). They
/// make every `=` and `::text` count as unknown, so only the gateway
/// bypass test loads them, not the oracle.
pub const FIXTURE_GLOBAL: &str = r#"
CREATE TYPE oracle.mood AS ENUM ('happy', 'sad');
CREATE TABLE oracle.moods (m oracle.mood, note text);
INSERT INTO oracle.moods VALUES ('happy', 'happy');
CREATE FUNCTION oracle.mood_text(oracle.mood) RETURNS text LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (7); RETURN 'x'; END$$;
CREATE CAST (oracle.mood AS text) WITH FUNCTION oracle.mood_text(oracle.mood) AS IMPLICIT;
CREATE FUNCTION oracle.mood_json(oracle.mood) RETURNS json LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (9); RETURN '1'; END$$;
CREATE CAST (oracle.mood AS json) WITH FUNCTION oracle.mood_json(oracle.mood);
CREATE FUNCTION oracle.mood_eq(oracle.mood, text) RETURNS boolean LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO oracle.log VALUES (8); RETURN true; END$$;
CREATE OPERATOR public.= (LEFTARG = oracle.mood, RIGHTARG = text, FUNCTION = oracle.mood_eq);
"#;

/// Statements that change something (each through a different mechanism).
/// The observer must see an effect for each, and the analyser must not
/// call any of them read-only.
pub const CONTROLS: &[&str] = &[
    "SELECT nextval('oracle.s1')",
    "SELECT oracle.w_touch()",
    "SELECT t.w_attr FROM oracle.t1 t",
    "SELECT (t).w_attr FROM oracle.t1 t",
    "SELECT (t2.p).w_pair FROM oracle.t2",
    "SELECT s.w_attr FROM (SELECT * FROM oracle.t1) s",
    "SELECT ('oracle.s1'::regclass).nextval",
    "SELECT lower(3)",
    "SELECT count(*) FROM oracle.t1 WHERE oracle.s_touch(a)",
    "SELECT * FROM oracle.v_touch",
    "SELECT * FROM oracle.v_nested",
    "SELECT * FROM oracle.rls_t",
    "SELECT 1 === 1",
    "SELECT 'a'::oracle.dom_touch",
    "SELECT pg_advisory_lock(1)",
    "SELECT set_config('work_mem', '1MB', false)",
    "SELECT lo_create(0)",
    "SELECT txid_current()",
    "EXPLAIN SELECT * FROM oracle.t1 WHERE a = oracle.s_touch(1)::int",
    "COPY (SELECT t.w_attr FROM oracle.t1 t) TO STDOUT",
    "SELECT oracle.w_agg(1)",
    "SELECT count(*) FROM oracle.t1 GROUP BY b HAVING oracle.w_agg(a) > 0",
    "SELECT 'x'::oracle.dom2",
    "SELECT '(x)'::oracle.comp",
    "SELECT '{x}'::oracle._dom_touch",
    "SELECT * FROM jsonb_to_record('{\"a\": \"x\"}') AS t(a oracle.dom_touch)",
    "SELECT jsonb_populate_record(NULL::oracle.comp, '{\"a\": \"x\"}')",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2) \
     CYCLE n SET c TO oracle.dom_touch 'x' DEFAULT oracle.dom_touch 'y' USING p SELECT n FROM r",
];

/// Statements that must stay read-only (columns are columns).
pub const READ_ONLY: &[&str] = &[
    "SELECT t.a, t.b FROM oracle.t1 t",
    "SELECT t.b FROM oracle.t1 t",
    "SELECT (t2.p).x FROM oracle.t2",
    "SELECT upper('A')",
    "SELECT count(*) FROM oracle.t1 WHERE a = 1",
];

/// A built-in function as `pg_proc` describes it.
#[derive(Debug, Clone)]
pub struct Builtin {
    /// Name.
    pub name: String,
    /// Argument types (`regtype` output).
    pub args: Vec<String>,
    /// Returns a set.
    pub set: bool,
    /// Aggregate.
    pub aggregate: bool,
}

/// Query listing the built-ins the generator calls.
pub const BUILTINS_SQL: &str = "SELECT p.proname, \
    array_to_string(p.proargtypes::regtype[], '|'), p.proretset, p.prokind = 'a' \
    FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace \
    AND p.prokind IN ('f', 'a') ORDER BY p.oid";

/// Query listing the built-in operators: name, left type (empty for a
/// prefix operator), right type.
pub const OPERATORS_SQL: &str = "SELECT o.oprname, \
    CASE WHEN o.oprleft = 0 THEN '' ELSE o.oprleft::regtype::text END, o.oprright::regtype::text \
    FROM pg_operator o WHERE o.oid < 16384 AND o.oprcode <> 0 ORDER BY o.oid";

/// Query listing the built-in casts: source type, target type.
pub const CASTS_SQL: &str = "SELECT c.castsource::regtype::text, c.casttarget::regtype::text \
    FROM pg_cast c WHERE c.oid < 16384 ORDER BY c.oid";

/// A built-in operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Symbol.
    pub name: String,
    /// Left operand type (`None`: prefix operator).
    pub left: Option<String>,
    /// Right operand type.
    pub right: String,
}

/// Every client encoding the server converts from UTF8.
pub const ENCODINGS: &[&str] = &[
    "UTF8",
    "SQL_ASCII",
    "LATIN1",
    "LATIN2",
    "LATIN9",
    "WIN1252",
    "WIN1251",
    "KOI8R",
    "EUC_JP",
    "EUC_KR",
    "EUC_CN",
    "SJIS",
    "BIG5",
    "GBK",
    "GB18030",
    "UHC",
    "ISO_8859_5",
    "WIN866",
];

/// Sample literals for an argument type; `None`: not generated.
fn samples(ty: &str) -> Option<&'static [&'static str]> {
    Some(match ty {
        "integer" | "smallint" | "bigint" => &["1", "0", "42", "-1", "4242"],
        "numeric" | "real" | "double precision" => &["1.5", "0", "2"],
        "text" | "character varying" | "name" | "character" | "\"char\"" | "unknown" => &[
            "'a'",
            "'oracle.s1'",
            "'oracle.t1'",
            "'SELECT oracle.w_touch()'",
            "'work_mem'",
            "'x'",
        ],
        "boolean" => &["true", "false"],
        "oid" => &["1", "4242", "1259"],
        "regclass" => &["'oracle.s1'::regclass", "'oracle.t1'::regclass"],
        "regproc" | "regprocedure" => &["'now'::regproc"],
        "regtype" => &["'int4'::regtype"],
        "regnamespace" => &["'oracle'::regnamespace"],
        "regrole" => &["current_user::regrole"],
        "regconfig" => &["'simple'::regconfig"],
        "date" => &["'2024-01-02'::date"],
        "timestamp without time zone" => &["'2024-01-02 03:04'::timestamp"],
        "timestamp with time zone" => &["'2024-01-02 03:04+00'::timestamptz"],
        "time without time zone" => &["'03:04'::time"],
        "time with time zone" => &["'03:04+00'::timetz"],
        "interval" => &["'1 day'::interval"],
        "json" => &["'{\"a\": 1}'::json"],
        "jsonb" => &["'{\"a\": [1, 2]}'::jsonb"],
        "jsonpath" => &["'$.a'::jsonpath"],
        "bytea" => &["'\\x0102'::bytea"],
        "uuid" => &["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid"],
        "inet" | "cidr" => &["'10.0.0.0/8'::inet"],
        "macaddr" => &["'08:00:2b:01:02:03'::macaddr"],
        "anyelement" | "anynonarray" | "anycompatible" | "anycompatiblenonarray" => {
            &["1", "'a'::text"]
        }
        "anyarray" | "anycompatiblearray" | "integer[]" => &["ARRAY[1, 2]"],
        "text[]" => &["ARRAY['a', 'b']"],
        "\"any\"" => &["1", "'a'::text"],
        "record" => &["ROW(1, 'a')"],
        "tsvector" => &["'a b'::tsvector"],
        "tsquery" => &["'a'::tsquery"],
        "xml" => &["'<a>1</a>'::xml"],
        "point" => &["'(1,1)'::point"],
        "box" => &["'(0,0),(1,1)'::box"],
        "circle" => &["'<(0,0),1>'::circle"],
        "money" => &["1::money"],
        "bit" | "bit varying" => &["B'101'"],
        "tid" => &["'(0,1)'::tid"],
        "pg_lsn" => &["'0/0'::pg_lsn"],
        "anyrange" | "anycompatiblerange" | "int4range" => &["int4range(1, 5)"],
        "anymultirange" | "anycompatiblemultirange" => &["int4multirange(int4range(1, 5))"],
        "refcursor" => &["'c'::refcursor"],
        "xid8" => &["'1'::xid8"],
        "xid" => &["'1'::xid"],
        _ => return None,
    })
}

/// Writing calls the text mutations try to smuggle past the lexer.
const SMUGGLED: &[&str] = &[
    "nextval('oracle.s1')",
    "oracle.w_touch()",
    "pg_advisory_lock(7)",
];

/// Client encodings with a multibyte character whose second byte is `\`
/// (0x5c), as (encoding, character bytes).
pub const BACKSLASH_TRAILS: &[(&str, &[u8])] = &[
    ("SJIS", &[0x95, 0x5c]),
    ("BIG5", &[0xa4, 0x5c]),
    ("GBK", &[0x81, 0x5c]),
    ("GB18030", &[0x81, 0x5c]),
    ("UTF8", &[0xc3, 0xa9]),
    ("LATIN1", &[0xe9]),
];

/// One statement to try.
#[derive(Debug, Clone)]
pub struct Case {
    /// Bytes as the client sends them.
    pub bytes: Vec<u8>,
    /// Client encoding to set first.
    pub encoding: &'static str,
    /// `standard_conforming_strings` value to set first.
    pub std_strings: bool,
}

impl Case {
    /// UTF-8 text with standard-conforming strings.
    pub fn plain(sql: String) -> Self {
        Self {
            bytes: sql.into_bytes(),
            encoding: "UTF8",
            std_strings: true,
        }
    }
}

/// An argument list for `b`, or `None` when a type has no sample.
fn args(b: &Builtin, rng: &mut StdRng) -> Option<Vec<String>> {
    b.args
        .iter()
        .map(|t| {
            samples(t)
                .and_then(|s| s.choose(rng))
                .map(|s| s.to_string())
        })
        .collect()
}

/// Wraps an expression in one of many statement positions.
fn position(expr: &str, set: bool, rng: &mut StdRng) -> String {
    if set && rng.gen_bool(0.5) {
        return format!("SELECT * FROM {expr} AS f LIMIT 3");
    }
    match rng.gen_range(0..12) {
        0 => format!("SELECT {expr}"),
        1 => format!("SELECT 1 WHERE ({expr}) IS NOT NULL"),
        2 => format!("WITH w AS (SELECT {expr} AS v) SELECT * FROM w"),
        3 => format!("EXPLAIN SELECT {expr}"),
        4 => format!("EXPLAIN (ANALYZE, COSTS OFF) SELECT {expr}"),
        5 => format!("SELECT (SELECT {expr})"),
        6 => format!("COPY (SELECT {expr}) TO STDOUT"),
        7 => format!("DECLARE c CURSOR FOR SELECT {expr}"),
        8 => format!("SELECT ({expr})::text"),
        9 => format!("SELECT t.a FROM oracle.t1 t WHERE t.a = 1 OR ({expr}) IS NULL"),
        10 => format!("VALUES (({expr}))"),
        _ => format!("SELECT count(*) FROM oracle.t1 GROUP BY ({expr})::text"),
    }
}

/// The generator: the deterministic part first (every built-in once, the
/// given corpus, the fixture forms), then random mutations forever.
pub struct Generator {
    rng: StdRng,
    builtins: Vec<Builtin>,
    operators: Vec<Operator>,
    casts: Vec<(String, String)>,
    fixed: std::vec::IntoIter<Case>,
}

/// What the generator draws from.
pub struct Sources {
    /// Built-in functions.
    pub builtins: Vec<Builtin>,
    /// Built-in operators.
    pub operators: Vec<Operator>,
    /// Built-in casts (source, target).
    pub casts: Vec<(String, String)>,
}

impl Generator {
    /// A generator over `sources` and `corpus`, seeded.
    pub fn new(seed: u64, sources: Sources, corpus: &[&str]) -> Self {
        use rand::SeedableRng;
        let Sources {
            builtins,
            operators,
            casts,
        } = sources;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut fixed: Vec<Case> = corpus.iter().map(|s| Case::plain(s.to_string())).collect();
        fixed.extend(
            CONTROLS
                .iter()
                .chain(READ_ONLY)
                .map(|s| Case::plain(s.to_string())),
        );
        for b in &builtins {
            if let Some(a) = args(b, &mut rng) {
                fixed.push(Case::plain(format!("SELECT {}", call(b, &a, false))));
                if let [one] = a.as_slice() {
                    // Attribute notation: (arg).name.
                    fixed.push(Case::plain(format!("SELECT ({one}).{}", quoted(&b.name))));
                }
            }
        }
        let mut g = Self {
            rng,
            builtins,
            operators,
            casts,
            fixed: Vec::new().into_iter(),
        };
        for i in 0..g.operators.len() {
            fixed.extend(g.operator_case(i));
        }
        for i in 0..g.casts.len() {
            fixed.extend(g.cast_case(i));
        }
        for _ in 0..200 {
            fixed.push(g.lexer_case());
        }
        g.fixed = fixed.into_iter();
        g
    }

    /// A statement applying operator `i` to sample operands.
    fn operator_case(&mut self, i: usize) -> Option<Case> {
        let op = self.operators.get(i)?.clone();
        let right = samples(&op.right)?.choose(&mut self.rng)?;
        let expr = match &op.left {
            Some(l) => format!("{} {} {right}", samples(l)?.choose(&mut self.rng)?, op.name),
            None => format!("{} {right}", op.name),
        };
        Some(Case::plain(position(
            &format!("({expr})"),
            false,
            &mut self.rng,
        )))
    }

    /// A statement casting a sample of cast `i`'s source type.
    fn cast_case(&mut self, i: usize) -> Option<Case> {
        let (source, target) = self.casts.get(i)?.clone();
        let value = samples(&source)?.choose(&mut self.rng)?;
        let expr = format!("CAST({value} AS {target})");
        Some(Case::plain(position(&expr, false, &mut self.rng)))
    }

    /// A random statement built around a built-in call.
    fn random_call(&mut self) -> Option<Case> {
        let b = self.builtins.choose(&mut self.rng)?.clone();
        let a = args(&b, &mut self.rng)?;
        let expr = call(&b, &a, true);
        let sql = match self.rng.gen_range(0..10) {
            0 if a.len() == 1 => format!("SELECT t.{} FROM oracle.t1 t", quoted(&b.name)),
            1 if a.len() == 1 => format!("SELECT ({}).{}", a[0], quoted(&b.name)),
            _ => position(&expr, b.set, &mut self.rng),
        };
        Some(Case::plain(sql))
    }

    /// Text whose reading depends on `standard_conforming_strings` or on
    /// the client encoding.
    fn lexer_case(&mut self) -> Case {
        let w = SMUGGLED.choose(&mut self.rng).copied().unwrap_or("1");
        let (encoding, ch) = *BACKSLASH_TRAILS
            .choose(&mut self.rng)
            .unwrap_or(&BACKSLASH_TRAILS[0]);
        let std_strings = self.rng.gen_bool(0.5);
        let mut bytes = b"SELECT ".to_vec();
        match self.rng.gen_range(0..6) {
            0 => bytes.extend_from_slice(format!("'x\\', {w} -- '").as_bytes()),
            1 => bytes.extend_from_slice(format!("E'x\\', {w} -- '").as_bytes()),
            2 => bytes.extend_from_slice(format!("'x\\\\', {w} -- '").as_bytes()),
            3 => {
                bytes.push(b'\'');
                bytes.extend_from_slice(ch);
                bytes.extend_from_slice(format!("', {w} -- '").as_bytes());
            }
            4 => {
                bytes.extend_from_slice(b"E'");
                bytes.extend_from_slice(ch);
                bytes.extend_from_slice(format!("', {w} -- '").as_bytes());
            }
            _ => {
                bytes.push(b'\'');
                bytes.extend_from_slice(ch);
                bytes.extend_from_slice(format!("''', {w} -- '").as_bytes());
            }
        }
        Case {
            bytes,
            encoding,
            std_strings,
        }
    }
}

impl Iterator for Generator {
    type Item = Case;

    fn next(&mut self) -> Option<Case> {
        if let Some(c) = self.fixed.next() {
            return Some(c);
        }
        loop {
            let case = match self.rng.gen_range(0..20) {
                0 | 1 => Some(self.lexer_case()),
                2 | 3 => {
                    let i = self.rng.gen_range(0..self.operators.len().max(1));
                    self.operator_case(i)
                }
                4 => {
                    let i = self.rng.gen_range(0..self.casts.len().max(1));
                    self.cast_case(i)
                }
                _ => self.random_call(),
            };
            if let Some(mut case) = case {
                // The same text under the other lexer setting, in another
                // client encoding.
                if self.rng.gen_bool(0.2) {
                    case.std_strings = !case.std_strings;
                }
                if self.rng.gen_bool(0.2) {
                    case.encoding = ENCODINGS.choose(&mut self.rng).copied().unwrap_or("UTF8");
                }
                return Some(case);
            }
        }
    }
}

fn quoted(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A call of `b` (an aggregate over a one-row table).
fn call(b: &Builtin, args: &[String], qualified: bool) -> String {
    let name = if qualified {
        format!("pg_catalog.{}", quoted(&b.name))
    } else {
        quoted(&b.name)
    };
    if b.aggregate {
        format!("(SELECT {name}({}) FROM oracle.t1)", args.join(", "))
    } else {
        format!("{name}({})", args.join(", "))
    }
}
