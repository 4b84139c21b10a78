//! Measures the per-statement costs on the hot path (parse → facts →
//! policy input → decision), for profiling: `cargo run --release --example hotpath`.
use std::time::Instant;

fn main() {
    let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;";
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        let s = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {i};");
        std::hint::black_box(pg_query::parse(&s, 0).ok());
    }
    println!(
        "pg_query::parse        {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(pg_query::fingerprint(sql, 0, 0).ok());
    }
    println!(
        "pg_query::fingerprint  {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let parsed = pg_query::parse(sql, 0).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_value(&parsed.protobuf).ok());
    }
    println!(
        "protobuf → JSON        {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(portcullis::sql::analyze(sql, Default::default()));
    }
    println!(
        "analyze (all)          {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let facts = portcullis::sql::analyze(sql, Default::default());
    let bundle = portcullis::policy::Bundle::load(
        std::path::Path::new(&std::env::var("POLICY_DIR").unwrap_or("policies".into())),
        "data.portcullis.decision",
    )
    .unwrap();
    let mut input = portcullis::policy::sample_input();
    input["user"]["groups"] = serde_json::json!(["dev"]);
    input["statement"] = serde_json::to_value(&facts[0]).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(regorus::Value::from(input.clone()));
    }
    println!(
        "input JSON → regorus   {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_value(&facts[0]).ok());
    }
    println!(
        "facts → JSON           {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(bundle.decide_json(input.clone()));
    }
    println!(
        "policy decide          {:>8.1} µs  ({:?})",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        bundle.decide_json(input.clone()).action
    );
}
