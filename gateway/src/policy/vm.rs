//! Runs a policy on regorus' bytecode VM (about 5× faster than the
//! interpreter here). A program is used only if it compiles and agrees with
//! the interpreter on a set of probe inputs; at run time any VM error falls
//! back to the interpreter, so the VM can only ever return what the
//! interpreter would.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::{CompiledPolicy, Value};
use serde_json::json;

static GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// One VM per worker thread, reloaded when the program changes.
    static VM: RefCell<Option<(u64, RegoVM)>> = const { RefCell::new(None) };
}

/// A compiled program plus what a VM needs to run it.
pub struct VmProgram {
    generation: u64,
    compiled: CompiledPolicy,
    program: Arc<Program>,
    data: Value,
    entry: String,
}

impl VmProgram {
    /// Compiles `query` of `engine` to bytecode.
    pub fn build(engine: &mut regorus::Engine, query: &str) -> Result<Self, String> {
        let entry: regorus::Rc<str> = regorus::Rc::from(query);
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| e.to_string())?;
        let program =
            Compiler::compile_from_policy(&compiled, &[query]).map_err(|e| e.to_string())?;
        Ok(Self {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            data: engine.get_data(),
            compiled,
            program,
            entry: query.to_string(),
        })
    }

    /// Evaluates on this thread's VM.
    pub fn eval(&self, input: Value) -> Result<Value, String> {
        VM.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(g, _)| *g != self.generation) {
                let mut vm = RegoVM::new_with_policy(self.compiled.clone());
                vm.load_program(self.program.clone());
                vm.set_execution_timer_config(Some(regorus::utils::limits::ExecutionTimerConfig {
                    limit: super::EVAL_TIME_LIMIT,
                    check_interval: super::TIMER_CHECK_INTERVAL,
                }));
                vm.set_data(self.data.clone()).map_err(|e| e.to_string())?;
                *slot = Some((self.generation, vm));
            }
            let (_, vm) = slot.as_mut().ok_or("no VM")?;
            vm.set_input(input);
            vm.execute_entry_point_by_name(&self.entry)
                .map_err(|e| e.to_string())
        })
    }

    /// Compares VM and interpreter on probe inputs; any difference or VM
    /// error disqualifies the program.
    pub fn self_check(&self, engine: &regorus::Engine, query: &str) -> Result<(), String> {
        for probe in probes() {
            let input = Value::from(probe);
            let want = super::interpret(engine, query, input.clone());
            let got = self.eval(input);
            match (&want, &got) {
                (Ok(a), Ok(b)) if a == b => {}
                (Err(_), Err(_)) => {}
                _ => {
                    return Err(format!(
                        "VM and interpreter disagree on a probe: {got:?} vs {want:?}"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Probe inputs: the sample input varied over groups and statement kinds,
/// flags and facts the shipped policy looks at.
fn probes() -> Vec<serde_json::Value> {
    let statements = [
        json!({"kind": "select", "read_only": true, "flags": [], "tables": [{"schema": "public", "name": "t", "access": "read"}]}),
        json!({"kind": "delete", "read_only": false, "flags": ["no_where", "bulk_write"], "tables": [{"schema": "public", "name": "t", "access": "write"}]}),
        json!({"kind": "update", "read_only": false, "flags": [], "has_where": true, "tables": [{"schema": "public", "name": "t", "access": "write"}]}),
        json!({"kind": "create_table", "read_only": false, "flags": ["ddl"], "tables": [{"schema": "public", "name": "t", "access": "ddl"}]}),
        json!({"kind": "copy", "read_only": true, "flags": ["copy_to"], "tables": [{"schema": "public", "name": "t", "access": "read"}]}),
        json!({"kind": "copy", "read_only": false, "flags": ["copy_from", "copy_program"], "tables": []}),
        json!({"kind": "unparsed", "read_only": false, "flags": ["parse_error"], "tables": []}),
        json!({"kind": "set", "read_only": false, "flags": ["role_change"], "tables": []}),
        json!({"kind": "do", "read_only": false, "flags": ["dynamic_sql"], "tables": []}),
        json!({"kind": "insert", "read_only": false, "flags": ["bulk_write"], "tables": [{"schema": "public", "name": "t", "access": "write"}]}),
    ];
    let groups = [
        json!([]),
        json!(["dev"]),
        json!(["analyst"]),
        json!(["etl"]),
        json!(["dba", "dev"]),
        json!(["marketing"]),
    ];
    let mut out = Vec::new();
    for s in &statements {
        for g in &groups {
            let mut input = super::sample_input();
            input["user"]["groups"] = g.clone();
            if let (Some(dst), Some(src)) = (input["statement"].as_object_mut(), s.as_object()) {
                for (k, v) in src {
                    dst.insert(k.clone(), v.clone());
                }
            }
            out.push(input);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{interpret, sample_input, Bundle};
    use crate::sql::{analyze, corpus_tests::corpus_sql, ParseSettings};

    /// The shipped policy gives the same decision on the VM and on the
    /// interpreter for every corpus statement and several group sets.
    #[test]
    fn vm_matches_interpreter_on_the_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let bundle = Bundle::load(&dir, "data.portcullis.decision").unwrap();
        let vm = bundle.vm.as_ref().expect("shipped policy runs on the VM");
        let mut checked = 0;
        for sql in corpus_sql() {
            for facts in analyze(sql, ParseSettings::default()) {
                for groups in [
                    vec![],
                    vec!["dev"],
                    vec!["analyst"],
                    vec!["etl", "dev"],
                    vec!["dba"],
                ] {
                    let mut input = sample_input();
                    input["user"]["groups"] = serde_json::json!(groups);
                    input["statement"] = serde_json::to_value(&facts).unwrap();
                    let value = regorus::Value::from(input);
                    let want = interpret(&bundle.engine, "data.portcullis.decision", value.clone())
                        .unwrap();
                    let got = vm.eval(value).unwrap();
                    assert_eq!(got, want, "{sql} {groups:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "{checked}");
    }
}
