//! Benchmark: time from an approver's decision to the held query's result.
//!
//! Starts the real servers (PostgreSQL, the OIDC provider, the approvals
//! service, the gateway) with the test harness, then N times: psql runs a
//! statement that needs approval; once the request is pending, an approver
//! approves it through the API (what the web UI's Approve button posts);
//! the time from sending that decision to psql's exit with the result is
//! one sample. Prints p50/p90/max and appends them to BENCHMARKS.md.
//!
//! `cargo run --release -p portcullis-e2e --example approval_latency [N]`
//! (`bash bench/approval_latency.sh [N]` builds what it needs first).

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use portcullis_e2e::approvals::Approvals;
use portcullis_e2e::clients::psql_cmd;
use portcullis_e2e::{idp, root, temp_dir, wait_for, Gateway, GatewayOptions};

const POLICY: &str = r#"package portcullis
import rego.v1
default decision := {"action": "allow"}
decision := {"action": "approve", "reasons": ["benchmark"],
  "approval": {"groups": ["dba"], "quorum": 1, "mode": "hold", "timeout": "60s"}} if input.statement.kind == "create_table"
"#;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let approvals = Approvals::start();
    let dir = temp_dir("bench-approvals");
    std::fs::write(dir.join("portcullis.rego"), POLICY).expect("policy");
    let gw = Gateway::start(GatewayOptions {
        policy_dir: dir,
        extra: approvals.gateway_section("bench"),
        ..Default::default()
    });
    let token = idp().token("riley");
    let approver = idp().token("dana");
    let http = reqwest::blocking::Client::new();
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let table = format!("bench_hold_{}_{i}", std::process::id());
        let mut psql = psql_cmd(&gw, "riley@example.com", &token, "app")
            .args(["-c", &format!("CREATE TABLE {table} (a int)")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        let mut id = String::new();
        wait_for("the pending request", Duration::from_secs(20), || {
            id = approvals
                .list("dana", "pending")
                .into_iter()
                .find(|r| r["statement"].as_str().is_some_and(|s| s.contains(&table)))
                .and_then(|r| r["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            !id.is_empty()
        });
        let t0 = Instant::now();
        let r = http
            .post(format!("{}/api/v1/requests/{id}/decision", approvals.url))
            .bearer_auth(&approver)
            .json(&serde_json::json!({"outcome": "approve", "comment": ""}))
            .send()
            .expect("decision");
        assert!(r.status().is_success(), "decision: {}", r.status());
        let status = psql.wait().expect("psql");
        samples.push(t0.elapsed());
        assert!(status.success(), "the approved statement failed");
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let line = format!(
        "approve → result, {runs} runs: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(p(0.5)),
        ms(p(0.9)),
        ms(samples[samples.len() - 1])
    );
    println!("{line}");
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(root().join("BENCHMARKS.md"))
        .expect("BENCHMARKS.md");
    let _ = writeln!(
        f,
        "\n## {date} — approval latency (bench/approval_latency.sh)\n\n\
         Time from the approver's decision (the API call the web UI's Approve button makes)\n\
         to the held psql statement's result, release builds, all on this machine:\n\
         {line} (target ≤ 200 ms).\n"
    );
}
