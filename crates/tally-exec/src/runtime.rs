//! The wasm sandbox.
//!
//! [`WasmRuntime`] owns one wasmtime engine configured for determinism (fuel metering, NaN
//! canonicalization, no threads, no relaxed SIMD) and a bounded cache of compiled modules keyed
//! by the archive's SHA-256. [`WasmRuntime::run`] instantiates a module in a fresh store with a
//! memory limit, a fuel budget (the start function is metered like the rest) and a wall-clock
//! deadline (an epoch ticker interrupts a run that overstays), copies the input in through
//! `alloc`, calls `run` and reads the output back with bounds checks. Fuel is a cost every
//! validator measures identically; wall time is reported but never scored.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally_core::hash::Hash32;
use thiserror::Error;
use wasmtime::{
    Caller, Config, Engine, ExternType, Linker, Module, Store, StoreLimits, StoreLimitsBuilder,
    Trap, ValType,
};

/// Milliseconds per epoch tick of the watchdog.
const TICK_MS: u64 = 5;
/// Most compiled modules cached.
const CACHE: usize = 64;
/// Most tool calls one run may make.
pub const MAX_TOOL_CALLS: usize = 256;
/// Longest job id.
pub const MAX_JOB_ID: usize = 128;

/// Why a submission produced no usable output. Each becomes a zero score with this reason.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Failure {
    /// The module does not compile, or imports something not offered, or lacks an export.
    #[error("load: {0}")]
    Load(String),
    /// Fuel ran out.
    #[error("out of fuel")]
    OutOfFuel,
    /// The wall-clock watchdog fired.
    #[error("timed out")]
    Timeout,
    /// A memory grow past the limit.
    #[error("memory limit exceeded")]
    MemoryLimit,
    /// Call stack exhausted.
    #[error("stack overflow")]
    StackOverflow,
    /// An out-of-bounds memory access.
    #[error("out-of-bounds memory access")]
    OutOfBounds,
    /// Any other trap.
    #[error("trap: {0}")]
    Trap(String),
    /// The returned pointer/length does not fit memory or the output cap.
    #[error("malformed output: {0}")]
    MalformedOutput(String),
}

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Fuel for instantiation (start function) and the call together.
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock limit.
    pub wall: Duration,
    /// Largest output, in bytes.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 50_000_000,
            memory_bytes: 64 << 20,
            wall: Duration::from_secs(2),
            max_output: 1 << 20,
        }
    }
}

/// A compiled submission.
pub type WasmModule = Module;

/// A tool call a submission made through a host function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// `task-eval={task_id};deployment={id}`.
    pub job_id: String,
    /// The tool the call names.
    pub kind: i32,
    /// Its argument bytes (at most 4 KiB).
    pub payload: Vec<u8>,
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// The output bytes, or why there are none.
    pub output: Result<Vec<u8>, Failure>,
    /// Fuel used (instantiation and call).
    pub fuel: u64,
    /// Wall time.
    pub wall: Duration,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
}

struct State {
    limits: StoreLimits,
    job_id: String,
    calls: Vec<ToolCall>,
}

/// The sandbox.
pub struct WasmRuntime {
    engine: Engine,
    cache: Mutex<(BTreeMap<Hash32, Module>, VecDeque<Hash32>)>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

fn classify(e: &wasmtime::Error) -> Failure {
    if let Some(t) = e.downcast_ref::<Trap>() {
        return match t {
            Trap::OutOfFuel => Failure::OutOfFuel,
            Trap::Interrupt => Failure::Timeout,
            Trap::StackOverflow => Failure::StackOverflow,
            Trap::MemoryOutOfBounds => Failure::OutOfBounds,
            other => Failure::Trap(other.to_string()),
        };
    }
    let msg = format!("{e:#}");
    if msg.contains("memory")
        && (msg.contains("grow") || msg.contains("limit") || msg.contains("minimum"))
    {
        Failure::MemoryLimit
    } else {
        Failure::Trap(msg.chars().take(200).collect())
    }
}

impl WasmRuntime {
    /// A runtime with its own engine and watchdog thread.
    pub fn new() -> Result<WasmRuntime, Failure> {
        let mut c = Config::new();
        c.consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            // threads are not compiled into this wasmtime build (no `threads` feature)
            .wasm_relaxed_simd(false)
            .max_wasm_stack(512 * 1024);
        let engine = Engine::new(&c).map_err(|e| Failure::Load(format!("engine: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e2, s2) = (engine.clone(), stop.clone());
        let ticker = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(TICK_MS));
                e2.increment_epoch();
            }
        });
        Ok(WasmRuntime {
            engine,
            cache: Mutex::new((BTreeMap::new(), VecDeque::new())),
            stop,
            ticker: Some(ticker),
        })
    }

    /// Compiles `bytes` (cached by `sha256`), refusing imports other than `tally.<name>` for
    /// names in `offered`, and modules that lack the ABI's exports.
    pub fn load(&self, bytes: &[u8], offered: &[&str]) -> Result<Module, Failure> {
        let id = tally_core::sha256(bytes);
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.0.get(&id).cloned()) {
            return Ok(m);
        }
        let m = Module::new(&self.engine, bytes)
            .map_err(|e| Failure::Load(format!("not a valid wasm module: {e}")))?;
        for imp in m.imports() {
            if imp.module() != "tally" || !offered.contains(&imp.name()) {
                return Err(Failure::Load(format!(
                    "import {}.{} is not offered (only tally.{{{}}} may be imported)",
                    imp.module(),
                    imp.name(),
                    offered.join(",")
                )));
            }
            if !matches!(imp.ty(), ExternType::Func(_)) {
                return Err(Failure::Load(format!(
                    "import tally.{} must be a function",
                    imp.name()
                )));
            }
        }
        for (name, want) in [("memory", "memory"), ("alloc", "func"), ("run", "func")] {
            let found = m
                .exports()
                .find(|e| e.name() == name)
                .map(|e| match e.ty() {
                    ExternType::Memory(_) => "memory",
                    ExternType::Func(_) => "func",
                    _ => "other",
                });
            if found != Some(want) {
                return Err(Failure::Load(format!("missing export {name} ({want})")));
            }
        }
        if let Ok(mut c) = self.cache.lock() {
            c.0.insert(id, m.clone());
            c.1.push_back(id);
            while c.1.len() > CACHE {
                if let Some(old) = c.1.pop_front() {
                    c.0.remove(&old);
                }
            }
        }
        Ok(m)
    }

    /// Runs `module` on `input` under `limits`; `job_id` labels its tool calls.
    pub fn run(&self, module: &Module, input: &[u8], limits: &Limits, job_id: &str) -> RunResult {
        let start = Instant::now();
        let job: String = job_id.chars().take(MAX_JOB_ID).collect();
        let state = State {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(1)
                .tables(4)
                .memories(1)
                .trap_on_grow_failure(true)
                .build(),
            job_id: job,
            calls: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let result = |store: &mut Store<State>| -> Result<Vec<u8>, Failure> {
            store
                .set_fuel(limits.fuel)
                .map_err(|e| Failure::Load(e.to_string()))?;
            store.set_epoch_deadline((limits.wall.as_millis() as u64 / TICK_MS).max(1));
            let mut linker: Linker<State> = Linker::new(&self.engine);
            linker
                .func_wrap(
                    "tally",
                    "tool",
                    |mut caller: Caller<'_, State>,
                     kind: i32,
                     ptr: i32,
                     len: i32|
                     -> wasmtime::Result<i32> {
                        if caller.data().calls.len() >= MAX_TOOL_CALLS {
                            return Err(wasmtime::Error::msg("too many tool calls"));
                        }
                        let mem = caller
                            .get_export("memory")
                            .and_then(|e| e.into_memory())
                            .ok_or_else(|| wasmtime::Error::msg("no memory"))?;
                        let (p, l) = (ptr as u32 as usize, (len as u32 as usize).min(4096));
                        let data = mem
                            .data(&caller)
                            .get(p..p.saturating_add(l))
                            .map(|s| s.to_vec())
                            .ok_or_else(|| wasmtime::Error::msg("tool argument out of bounds"))?;
                        let job_id = caller.data().job_id.clone();
                        caller.data_mut().calls.push(ToolCall {
                            job_id,
                            kind,
                            payload: data,
                        });
                        Ok(0)
                    },
                )
                .map_err(|e| Failure::Load(e.to_string()))?;
            // refuse imports whose signature does not match what we offer
            for imp in module.imports() {
                if let ExternType::Func(f) = imp.ty() {
                    let ok = imp.name() == "tool"
                        && f.params()
                            .map(|p| matches!(p, ValType::I32))
                            .collect::<Vec<_>>()
                            == vec![true, true, true]
                        && f.results().len() == 1;
                    if !ok {
                        return Err(Failure::Load(format!(
                            "import tally.{} has the wrong signature",
                            imp.name()
                        )));
                    }
                }
            }
            let instance = linker
                .instantiate(&mut *store, module)
                .map_err(|e| classify(&e))?;
            let memory = instance
                .get_memory(&mut *store, "memory")
                .ok_or_else(|| Failure::Load("missing export memory".into()))?;
            let alloc = instance
                .get_typed_func::<i32, i32>(&mut *store, "alloc")
                .map_err(|e| Failure::Load(format!("alloc: {e}")))?;
            let run = instance
                .get_typed_func::<(i32, i32), i64>(&mut *store, "run")
                .map_err(|e| Failure::Load(format!("run: {e}")))?;
            let len = i32::try_from(input.len())
                .map_err(|_| Failure::MalformedOutput("input too large".into()))?;
            let ptr = alloc.call(&mut *store, len).map_err(|e| classify(&e))?;
            let p = ptr as u32 as usize;
            if ptr == 0 && !input.is_empty() {
                return Err(Failure::MalformedOutput("alloc returned 0".into()));
            }
            memory
                .data_mut(&mut *store)
                .get_mut(p..p.saturating_add(input.len()))
                .ok_or_else(|| {
                    Failure::MalformedOutput("alloc returned memory out of bounds".into())
                })?
                .copy_from_slice(input);
            let packed = run
                .call(&mut *store, (ptr, len))
                .map_err(|e| classify(&e))?;
            let (op, ol) = (
                (packed as u64 >> 32) as usize,
                (packed as u64 & 0xffff_ffff) as usize,
            );
            if ol > limits.max_output {
                return Err(Failure::MalformedOutput(format!(
                    "{ol} bytes is over the {}-byte output cap",
                    limits.max_output
                )));
            }
            memory
                .data(&*store)
                .get(op..op.saturating_add(ol))
                .map(|s| s.to_vec())
                .ok_or_else(|| Failure::MalformedOutput("output out of bounds".into()))
        };
        let output = result(&mut store);
        let left = store.get_fuel().unwrap_or(0);
        RunResult {
            output,
            fuel: limits.fuel.saturating_sub(left),
            wall: start.elapsed(),
            tool_calls: std::mem::take(&mut store.data_mut().calls),
        }
    }
}
