//! `portcullis policy test`: runs every `test_*` rule in a policy directory
//! (including `*_test.rego`) and reports pass/fail per test.

use std::path::Path;

use super::{build_engine, read_sources, PolicyError};

/// Result of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// `data.pkg.test_name`.
    pub name: String,
    /// File it is defined in.
    pub file: String,
    /// Passed (rule evaluated to `true`).
    pub passed: bool,
    /// Why it failed.
    pub detail: String,
}

/// Finds `test_*` rules: (package, rule, file) for each.
fn find_tests(sources: &super::Sources) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, text) in &sources.rego {
        let mut package = String::new();
        for line in text.lines() {
            let l = line.trim_start();
            if let Some(p) = l.strip_prefix("package ") {
                package = p.trim().to_string();
                continue;
            }
            if line.starts_with("test_") {
                let name: String = l
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let entry = (package.clone(), name, path.display().to_string());
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    out
}

/// Runs all tests in `dir`.
pub fn run(dir: &Path) -> Result<Vec<TestResult>, PolicyError> {
    let sources = read_sources(dir, true)?;
    let engine = build_engine(&sources)?;
    let mut results = Vec::new();
    for (package, name, file) in find_tests(&sources) {
        let rule = format!("data.{package}.{name}");
        let mut e = engine.clone();
        let (passed, detail) = match e.eval_rule(rule.clone()) {
            Ok(regorus::Value::Bool(true)) => (true, String::new()),
            Ok(regorus::Value::Undefined) => (false, "undefined (a condition did not hold)".into()),
            Ok(v) => (false, format!("evaluated to {v}")),
            Err(err) => (false, format!("error: {err}")),
        };
        results.push(TestResult {
            name: rule,
            file,
            passed,
            detail,
        });
    }
    Ok(results)
}
