//! Decision caching and fail-closed decisions, against a real gateway:
//! the shipped policy is cached per literal template (pgbench-style texts
//! that differ only in literal values hit the cache), `policy inspect`
//! explains the mode, a policy that reads the statement text or the time
//! is classified accordingly, and a decision that asks for masking is
//! refused without a row leaving.

use std::process::Command;
use std::time::Duration;

use portcullis_e2e::clients::{psql, Run};
use portcullis_e2e::{idp, portcullis_bin, root, temp_dir, wait_for, Gateway, GatewayOptions};

const ALICE: &str = "alice@example.com";

fn inspect(dir: &std::path::Path) -> Run {
    Command::new(portcullis_bin())
        .args(["policy", "inspect", dir.to_str().unwrap()])
        .output()
        .unwrap()
        .into()
}

fn metric(gw: &Gateway, name: &str) -> u64 {
    let (_, text) = gw.admin_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{text}"))
}

#[test]
fn literal_variants_hit_the_decision_cache() {
    let gw = Gateway::start(GatewayOptions::default());
    let before = metric(&gw, "portcullis_decision_cache_hits_total");
    let mut args = Vec::new();
    let queries: Vec<String> = (1..=6)
        .map(|i| format!("select name from items where id = {i}"))
        .collect();
    for q in &queries {
        args.push("-c");
        args.push(q.as_str());
    }
    let r = psql(&gw, ALICE, &idp().token("alice"), &args);
    assert!(r.ok, "{}", r.all());
    assert!(r.stdout.contains("item 6"), "{}", r.all());
    let hits = metric(&gw, "portcullis_decision_cache_hits_total") - before;
    // psql -c runs each in the same session: the first decides, the other
    // five differ only in the literal.
    assert!(hits >= 5, "{hits} cache hits");
    // Every hit still writes its decision line.
    wait_for("the cached decision lines", Duration::from_secs(10), || {
        gw.log()
            .lines()
            .filter(|l| l.contains("portcullis::decision") && l.contains("cached=true"))
            .count()
            >= 5
    });
}

#[test]
fn inspect_explains_the_cache_mode() {
    let r = inspect(&root().join("policies"));
    assert!(r.ok, "{}", r.all());
    assert!(r.stdout.contains("decision cache: template"), "{}", r.all());
    assert!(r.stdout.contains("  statement.kind\n"), "{}", r.all());

    let dir = temp_dir("inspect");
    std::fs::write(
        dir.join("p.rego"),
        "package portcullis\nimport rego.v1\nstmt := input.statement\n\
         decision := {\"action\": \"deny\"} if contains(lower(stmt.text), \"drop\")\n",
    )
    .unwrap();
    let r = inspect(&dir);
    assert!(
        r.stdout
            .contains("decision cache: exact (reads input.statement.text"),
        "{}",
        r.all()
    );
    std::fs::write(
        dir.join("p.rego"),
        "package portcullis\nimport rego.v1\n\
         decision := {\"action\": \"deny\"} if time.now_ns() > 0\n",
    )
    .unwrap();
    let r = inspect(&dir);
    assert!(
        r.stdout
            .contains("decision cache: off (calls non-deterministic builtins: time.now_ns)"),
        "{}",
        r.all()
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_mask_rule_that_cannot_be_applied_is_refused_and_no_row_leaves() {
    let dir = temp_dir("maskpol");
    std::fs::write(
        dir.join("p.rego"),
        "package portcullis\nimport rego.v1\n\
         default decision := {\"action\": \"allow\", \"reasons\": []}\n\
         decision := {\"action\": \"allow\", \"reasons\": [], \"mask\": [{\"table\": \"public.items\", \"column\": \"secret\", \"method\": \"scramble\"}]} if {\n\
           some t in input.statement.tables\n  t.name == \"items\"\n}\n",
    )
    .unwrap();
    let gw = Gateway::start(GatewayOptions {
        policy_dir: dir.clone(),
        ..GatewayOptions::default()
    });
    let r = psql(
        &gw,
        ALICE,
        &idp().token("alice"),
        &[
            "-c",
            "select id, secret from items",
            "-c",
            "select 'still usable'",
        ],
    );
    assert!(
        r.stderr
            .contains("the policy's mask rules cannot be applied: unknown masking method \"scramble\" for public.items.secret"),
        "{}",
        r.all()
    );
    assert!(!r.stdout.contains("secret "), "a row leaked: {}", r.all());
    assert!(r.stdout.contains("still usable"), "{}", r.all());
    std::fs::remove_dir_all(dir).ok();
}
