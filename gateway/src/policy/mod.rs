//! Rego policy: loading a policy directory into `regorus`, evaluating the
//! decision rule per statement, hot reload, and the decision schema.

mod analysis;
mod decision;
pub mod input;
pub mod testing;
mod vm;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use analysis::{CacheMode, InputUse};
pub use decision::{Action, ApprovalSpec, Decision, MaskRule};
pub use input::sample_input;

/// Longest a single evaluation may run before it is stopped (→ deny).
pub const EVAL_TIME_LIMIT: Duration = Duration::from_millis(250);

/// How many evaluation steps run between two looks at the clock.
pub const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(64) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Errors loading or evaluating policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {why}")]
    Read {
        /// Path.
        path: String,
        /// Reason.
        why: String,
    },
    /// A Rego file did not compile (message carries file:line).
    #[error("{0}")]
    Compile(String),
    /// `data.json` is not valid JSON.
    #[error("{path}: {why}")]
    Data {
        /// Path.
        path: String,
        /// Reason.
        why: String,
    },
    /// No `.rego` files found.
    #[error("no .rego files in {0}")]
    Empty(String),
    /// Evaluation failed.
    #[error("policy evaluation failed: {0}")]
    Eval(String),
}

/// A compiled, warmed-up policy bundle.
pub struct Bundle {
    engine: regorus::Engine,
    /// Bytecode program, when it compiled and agreed with the interpreter
    /// on every probe input.
    vm: Option<vm::VmProgram>,
    query: String,
    /// Short hash of every file in the bundle; logged with each decision.
    pub hash: String,
    /// What the policy reads from `input` (from its AST).
    pub input_use: InputUse,
    /// How decisions of this policy may be cached, and why.
    pub cache_mode: (CacheMode, String),
    /// The policy reads `session.in_transaction`.
    pub reads_tx: bool,
    /// Files loaded, for messages.
    pub files: Vec<PathBuf>,
}

/// What was read from a policy directory.
pub struct Sources {
    /// (path, text) of each Rego file, sorted by path.
    pub rego: Vec<(PathBuf, String)>,
    /// Merged data documents.
    pub data: Vec<(PathBuf, Value)>,
    /// Hash of all contents.
    pub hash: String,
}

/// Reads `*.rego` (optionally including `*_test.rego`) and `data.json` /
/// `*.data.json` files from `dir`.
pub fn read_sources(dir: &Path, include_tests: bool) -> Result<Sources, PolicyError> {
    let read_err = |p: &Path, e: std::io::Error| PolicyError::Read {
        path: p.display().to_string(),
        why: e.to_string(),
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut hasher = Sha256::new();
    let mut rego = Vec::new();
    let mut data = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let is_test = name.ends_with("_test.rego");
        if name.ends_with(".rego") && (include_tests || !is_test) {
            let text = std::fs::read_to_string(&p).map_err(|e| read_err(&p, e))?;
            hasher.update(name.as_bytes());
            hasher.update(text.as_bytes());
            rego.push((p, text));
        } else if name == "data.json" || name.ends_with(".data.json") {
            let text = std::fs::read_to_string(&p).map_err(|e| read_err(&p, e))?;
            hasher.update(name.as_bytes());
            hasher.update(text.as_bytes());
            let v: Value = serde_json::from_str(&text).map_err(|e| PolicyError::Data {
                path: p.display().to_string(),
                why: format!("line {}: {e}", e.line()),
            })?;
            data.push((p, v));
        }
    }
    if rego.is_empty() {
        return Err(PolicyError::Empty(dir.display().to_string()));
    }
    Ok(Sources {
        rego,
        data,
        hash: hex::encode(&hasher.finalize()[..8]),
    })
}

/// Builds an engine from sources, with the time limit set.
pub fn build_engine(src: &Sources) -> Result<regorus::Engine, PolicyError> {
    let mut engine = regorus::Engine::new();
    engine.set_strict_builtin_errors(true);
    for (path, text) in &src.rego {
        engine
            .add_policy(path.display().to_string(), text.clone())
            .map_err(|e| PolicyError::Compile(e.to_string()))?;
    }
    for (path, v) in &src.data {
        engine
            .add_data(regorus::Value::from(v.clone()))
            .map_err(|e| PolicyError::Data {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
    }
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: EVAL_TIME_LIMIT,
        check_interval: TIMER_CHECK_INTERVAL,
    });
    Ok(engine)
}

impl Bundle {
    /// Loads and compiles the policy directory, and warms the engine up with
    /// one evaluation so later clones are cheap.
    pub fn load(dir: &Path, query: &str) -> Result<Self, PolicyError> {
        Self::load_with(dir, query, true)
    }

    /// Like [`Bundle::load`]; `use_vm = false` keeps every evaluation on
    /// the interpreter (config `policy.engine = "interpreter"`).
    pub fn load_with(dir: &Path, query: &str, use_vm: bool) -> Result<Self, PolicyError> {
        let src = read_sources(dir, false)?;
        let mut engine = build_engine(&src)?;
        // Warm-up: runs the analysis pass once; errors surface here.
        engine.set_input(regorus::Value::from(sample_input()));
        engine
            .eval_rule(query.to_string())
            .map_err(|e| PolicyError::Compile(e.to_string()))?;
        let input_use = analysis::analyze(engine.get_modules());
        let cache_mode = input_use.cache_mode();
        let vm = if use_vm {
            vm::VmProgram::build(&mut engine.clone(), query)
                .and_then(|p| p.self_check(&engine, query).map(|_| p))
        } else {
            Err("policy.engine = \"interpreter\"".to_string())
        };
        let vm = match vm {
            Ok(p) => Some(p),
            Err(why) if !use_vm => {
                tracing::info!(policy_hash = %src.hash, reason = %why, "policy runs on the interpreter");
                None
            }
            Err(why) => {
                tracing::warn!(policy_hash = %src.hash, reason = %why, "policy runs on the interpreter (bytecode VM unavailable for it)");
                None
            }
        };
        Ok(Self {
            engine,
            vm,
            query: query.to_string(),
            hash: src.hash,
            reads_tx: input_use.reads("session.in_transaction"),
            input_use,
            cache_mode,
            files: src.rego.into_iter().map(|(p, _)| p).collect(),
        })
    }

    /// Evaluates the decision for one input. Never fails: an error, an
    /// undefined or a malformed result is a deny with the reason.
    pub fn decide(&self, value: regorus::Value) -> Decision {
        if let Some(vm) = &self.vm {
            // A VM error is not a decision: the interpreter, the reference
            // implementation, decides instead.
            if let Ok(v) = vm.eval(value.clone()) {
                return Decision::from_value(&v);
            }
        }
        Decision::from_value_or_error(interpret(&self.engine, &self.query, value))
    }

    /// [`Bundle::decide`] for a JSON input.
    pub fn decide_json(&self, input: Value) -> Decision {
        self.decide(regorus::Value::from(input))
    }

    /// Whether decisions run on the bytecode VM.
    pub fn uses_vm(&self) -> bool {
        self.vm.is_some()
    }
}

/// Evaluates `query` with the interpreter on a clone of a warmed engine.
fn interpret(
    engine: &regorus::Engine,
    query: &str,
    input: regorus::Value,
) -> Result<regorus::Value, String> {
    let mut engine = engine.clone();
    engine.set_input(input);
    engine
        .eval_rule(query.to_string())
        .map_err(|e| e.to_string())
}

/// The policy in force, swapped whole on reload.
#[derive(Clone)]
pub struct PolicyStore {
    current: Arc<RwLock<Arc<Bundle>>>,
    /// Bumped on every swap, so holders of a bundle can check for a new
    /// one with one atomic load.
    generation: Arc<AtomicU64>,
    dir: PathBuf,
    query: String,
    use_vm: bool,
}

impl PolicyStore {
    /// Loads the initial policy; fails if it does not compile.
    pub fn open(dir: &Path, query: &str, use_vm: bool) -> Result<Self, PolicyError> {
        let bundle = Bundle::load_with(dir, query, use_vm)?;
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(bundle))),
            generation: Arc::new(AtomicU64::new(1)),
            dir: dir.to_path_buf(),
            query: query.to_string(),
            use_vm,
        })
    }

    /// The bundle in force.
    pub fn current(&self) -> Arc<Bundle> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The generation of the bundle in force (changes on every reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reloads if the files changed. Returns `Ok(Some(hash))` after a
    /// successful reload, `Ok(None)` if nothing changed, `Err` if the new
    /// files do not compile (the old policy stays).
    pub fn reload_if_changed(&self) -> Result<Option<String>, PolicyError> {
        let hash = read_sources(&self.dir, false)?.hash;
        if hash == self.current().hash {
            return Ok(None);
        }
        let bundle = Bundle::load_with(&self.dir, &self.query, self.use_vm)?;
        let new_hash = bundle.hash.clone();
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(bundle),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(bundle),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(Some(new_hash))
    }

    /// Polls the directory every `interval`, reloading on change.
    /// `on_reload(ok)` is called after each reload attempt that changed
    /// something (metrics hook; keeps this module free of metrics).
    pub fn spawn_watcher(&self, interval: Duration, on_reload: impl Fn(bool) + Send + 'static) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            let mut last_error: Option<String> = None;
            loop {
                tick.tick().await;
                let s = store.clone();
                let result = tokio::task::spawn_blocking(move || s.reload_if_changed()).await;
                match result {
                    Ok(Ok(Some(hash))) => {
                        on_reload(true);
                        last_error = None;
                        tracing::info!(policy_hash = %hash, "policy reloaded");
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        let msg = e.to_string();
                        if last_error.as_deref() != Some(msg.as_str()) {
                            on_reload(false);
                            tracing::error!(error = %msg, policy_hash = %store.current().hash, "policy reload failed; keeping the previous policy");
                            last_error = Some(msg);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "policy reload task failed"),
                }
            }
        });
    }
}
