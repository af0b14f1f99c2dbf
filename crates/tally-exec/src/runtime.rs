//! The wasm sandbox.
//!
//! [`WasmRuntime`] owns two wasmtime engines configured for determinism (fuel metering, NaN
//! canonicalization, no threads, no relaxed SIMD) and a bounded cache of compiled modules keyed
//! by the archive's SHA-256.
//!
//! Loading is bounded like running. [`WasmRuntime::load`] first checks the module against the
//! compile [`Budget`] (size, functions, body size, locals, nesting, compile work, initial memory
//! plus tables; see [`crate::budget`]) and refuses it with [`Failure::Budget`] before a byte is
//! compiled. A module within budget is compiled on one dedicated compile thread fed by a
//! bounded queue, so compiles never run in parallel (their memory does not add up) and never on
//! the caller's thread: the caller waits at most the compile deadline. The compile tier comes
//! from the budget: small modules (every honest reference submission) get Cranelift's
//! optimizations, larger ones the single-pass register allocator without optimizations, whose
//! cost is linear in the code; fuel is counted on wasm operators, so both tiers meter a
//! submission identically. Outcomes are cached by hash (compiled modules, and refusals that do
//! not depend on the family, each cache bounded), so a bad module is refused from the cache
//! instead of being checked or compiled again every run.
//!
//! [`WasmRuntime::run`] instantiates a module in a fresh store under one memory cap that counts
//! linear memory and table elements together ([`TABLE_ELEMENT_BYTES`] each), a fuel budget (the
//! start function is metered like the rest) and a wall-clock deadline (an epoch ticker
//! interrupts a run that overstays), copies the input in through `alloc`, calls `run` and reads
//! the output back with bounds checks. Fuel is a cost every validator measures identically;
//! wall time is reported but never scored.

use crate::budget::{self, Budget, Refusal, Tier, TABLE_ELEMENT_BYTES};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally_core::hash::Hash32;
use thiserror::Error;
use wasmtime::{
    Caller, Config, Engine, ExternType, Linker, Module, OptLevel, RegallocAlgorithm,
    ResourceLimiter, Store, Trap, ValType,
};

/// Milliseconds per epoch tick of the watchdog.
const TICK_MS: u64 = 5;
/// Most compiled modules cached.
pub const CACHE: usize = 64;
/// Most refusals cached (each a short reason).
pub const REFUSALS: usize = 1024;
/// Most modules waiting for the compile thread; a load beyond is refused for now, uncached.
pub const COMPILE_QUEUE: usize = 16;
/// How long a load waits for its compile by default.
pub const COMPILE_DEADLINE: Duration = Duration::from_secs(2);
/// Most tables an instance may have.
const TABLES: usize = 4;
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
    /// Refused before compiling: over the compile budget. The reason names the limit and the
    /// value. The module's own fault: it scores 0.
    #[error("refused: {0}")]
    Budget(String),
    /// This node could not compile the module in time (deadline, full queue): its own load,
    /// not the module's fault, so a validator abstains on the miner rather than scoring 0.
    #[error("busy: {0}")]
    Busy(String),
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
    /// Largest linear memory plus tables (elements x [`TABLE_ELEMENT_BYTES`]), in bytes.
    pub memory_bytes: usize,
    /// Wall-clock limit of one run ([`crate::family::evaluate`] spends it over all tasks).
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

/// The memory cap of one store: linear memory and table elements count against one cap.
struct Cap {
    cap: usize,
    memory: usize,
    tables: usize,
}

/// Growth past the store's memory cap (classified as [`Failure::MemoryLimit`]).
#[derive(Debug, Error)]
#[error(
    "memory limit: {what} would bring memory and tables to {total} bytes, over the {cap}-byte cap"
)]
struct OverCap {
    what: &'static str,
    total: usize,
    cap: usize,
}

impl ResourceLimiter for Cap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let memory = self.memory.saturating_sub(current).saturating_add(desired);
        let total = memory.saturating_add(self.tables);
        if total > self.cap || maximum.is_some_and(|m| desired > m) {
            return Err(wasmtime::Error::new(OverCap {
                what: "memory growth",
                total,
                cap: self.cap,
            }));
        }
        self.memory = memory;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("memory growth failed"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = |n: usize| n.saturating_mul(TABLE_ELEMENT_BYTES as usize);
        let tables = self
            .tables
            .saturating_sub(bytes(current))
            .saturating_add(bytes(desired));
        let total = tables.saturating_add(self.memory);
        if total > self.cap || maximum.is_some_and(|m| desired > m) {
            return Err(wasmtime::Error::new(OverCap {
                what: "a table",
                total,
                cap: self.cap,
            }));
        }
        self.tables = tables;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("table growth failed"))
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        TABLES
    }

    fn memories(&self) -> usize {
        1
    }
}

struct State {
    limits: Cap,
    job_id: String,
    calls: Vec<ToolCall>,
}

/// A bounded map in least-recently-used order.
struct Lru<V> {
    map: BTreeMap<Hash32, V>,
    order: VecDeque<Hash32>,
    cap: usize,
}

impl<V: Clone> Lru<V> {
    fn new(cap: usize) -> Self {
        Lru {
            map: BTreeMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn get(&mut self, id: &Hash32) -> Option<V> {
        let v = self.map.get(id).cloned()?;
        self.order.retain(|k| k != id);
        self.order.push_back(*id);
        Some(v)
    }

    fn insert(&mut self, id: Hash32, v: V) {
        if self.map.insert(id, v).is_some() {
            self.order.retain(|k| *k != id);
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// Compiled modules and refusals by archive hash, and how often each kind of work was done.
struct Cache {
    modules: Lru<Module>,
    refused: Lru<Failure>,
    /// Modules queued or compiling, with the loads waiting for each (a module is queued once
    /// however often it is loaded meanwhile).
    pending: BTreeMap<Hash32, Vec<(u64, Reply)>>,
    /// Numbers the waiting loads (a load that gives up removes its own entry).
    waiter: u64,
    checked: u64,
    compiled: u64,
}

/// Where a waiting load gets its compile's outcome.
type Reply = SyncSender<Result<Module, Failure>>;

/// Most loads waiting at once on one pending compile.
const WAITERS: usize = 64;

/// What a runtime's loads have done so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadStats {
    /// Modules checked against the budget (each a cache miss).
    pub checked: u64,
    /// Modules compiled.
    pub compiled: u64,
    /// Compiled modules cached now (at most [`CACHE`]).
    pub modules: usize,
    /// Refusals cached now (at most [`REFUSALS`]).
    pub refusals: usize,
}

impl Cache {
    fn get(&mut self, id: &Hash32) -> Option<Result<Module, Failure>> {
        if let Some(m) = self.modules.get(id) {
            return Some(Ok(m));
        }
        self.refused.get(id).map(Err)
    }

    fn put(&mut self, id: Hash32, r: &Result<Module, Failure>) {
        match r {
            Ok(m) => self.modules.insert(id, m.clone()),
            Err(f) => self.refused.insert(id, f.clone()),
        }
    }
}

type Shared = Arc<Mutex<Cache>>;

/// One module for the compile thread.
struct Job {
    id: Hash32,
    bytes: Vec<u8>,
    tier: Tier,
}

/// The sandbox.
pub struct WasmRuntime {
    optimizing: Engine,
    linear: Engine,
    budget: Budget,
    deadline: Duration,
    cache: Shared,
    jobs: SyncSender<Job>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        // the compile thread ends when the queue's sender goes with `self`; a compile in
        // progress finishes on its own (the budget bounds it), so it is not joined here
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// The compile thread: compiles each job, caches the outcome (a late compile still serves the
/// next load) and answers every load still waiting for it.
fn compile_worker(rx: mpsc::Receiver<Job>, optimizing: Engine, linear: Engine, cache: Shared) {
    while let Ok(job) = rx.recv() {
        let engine = match job.tier {
            Tier::Optimizing => &optimizing,
            Tier::Linear => &linear,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Module::new(engine, &job.bytes)
        }))
        .unwrap_or_else(|_| Err(wasmtime::Error::msg("the compiler panicked")))
        .map_err(|e| {
            Failure::Load(format!(
                "not a valid wasm module: {}",
                format!("{e:#}").chars().take(300).collect::<String>()
            ))
        });
        let waiting = match cache.lock() {
            Ok(mut c) => {
                c.compiled += 1;
                c.put(job.id, &r);
                c.pending.remove(&job.id).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        for (_, w) in waiting {
            let _ = w.try_send(r.clone());
        }
    }
}

fn engine(tier: Tier) -> Result<Engine, Failure> {
    let mut c = Config::new();
    c.consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        // threads are not compiled into this wasmtime build (no `threads` feature)
        .wasm_relaxed_simd(false)
        .max_wasm_stack(512 * 1024);
    // compiles are sequential already: this build has no `parallel-compilation` feature
    if tier == Tier::Linear {
        c.cranelift_opt_level(OptLevel::None)
            .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
    }
    Engine::new(&c).map_err(|e| Failure::Load(format!("engine: {e}")))
}

/// Refuses imports other than functions `tally.<name>` for names in `offered`.
fn check_imports<'a>(
    imports: impl Iterator<Item = (&'a str, &'a str, bool)>,
    offered: &[&str],
) -> Result<(), Failure> {
    for (module, name, func) in imports {
        if module != "tally" || !offered.contains(&name) {
            return Err(Failure::Load(format!(
                "import {module}.{name} is not offered (only tally.{{{}}} may be imported)",
                offered.join(",")
            )));
        }
        if !func {
            return Err(Failure::Load(format!(
                "import tally.{name} must be a function"
            )));
        }
    }
    Ok(())
}

/// Refuses modules without the ABI's exports.
fn check_exports(exports: &[(String, &'static str)]) -> Result<(), Failure> {
    for (name, want) in [("memory", "memory"), ("alloc", "func"), ("run", "func")] {
        let found = exports.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
        if found != Some(want) {
            return Err(Failure::Load(format!("missing export {name} ({want})")));
        }
    }
    Ok(())
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
    if e.downcast_ref::<OverCap>().is_some() {
        return Failure::MemoryLimit;
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
    /// A runtime with the default [`Budget`] and [`COMPILE_DEADLINE`], its own engines, compile
    /// thread and watchdog thread.
    pub fn new() -> Result<WasmRuntime, Failure> {
        WasmRuntime::with_budget(Budget::default(), COMPILE_DEADLINE)
    }

    /// A runtime that refuses modules over `budget` and waits at most `deadline` for a compile.
    pub fn with_budget(budget: Budget, deadline: Duration) -> Result<WasmRuntime, Failure> {
        let optimizing = engine(Tier::Optimizing)?;
        let linear = engine(Tier::Linear)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e1, e2, s2) = (optimizing.clone(), linear.clone(), stop.clone());
        let ticker = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(TICK_MS));
                    e1.increment_epoch();
                    e2.increment_epoch();
                }
            })
            .map_err(|e| Failure::Load(format!("watchdog thread: {e}")))?;
        let cache: Shared = Arc::new(Mutex::new(Cache {
            modules: Lru::new(CACHE),
            refused: Lru::new(REFUSALS),
            pending: BTreeMap::new(),
            waiter: 0,
            checked: 0,
            compiled: 0,
        }));
        let (jobs, rx) = mpsc::sync_channel(COMPILE_QUEUE);
        let (o, l, c) = (optimizing.clone(), linear.clone(), cache.clone());
        std::thread::Builder::new()
            .name("wasm-compile".into())
            .spawn(move || compile_worker(rx, o, l, c))
            .map_err(|e| Failure::Load(format!("compile thread: {e}")))?;
        Ok(WasmRuntime {
            optimizing,
            linear,
            budget,
            deadline,
            cache,
            jobs,
            stop,
            ticker: Some(ticker),
        })
    }

    /// The budget modules are checked against.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// What loads have done so far.
    pub fn stats(&self) -> LoadStats {
        self.cache
            .lock()
            .map(|c| LoadStats {
                checked: c.checked,
                compiled: c.compiled,
                modules: c.modules.map.len(),
                refusals: c.refused.map.len(),
            })
            .unwrap_or(LoadStats {
                checked: 0,
                compiled: 0,
                modules: 0,
                refusals: 0,
            })
    }

    /// The engine of `tier`.
    pub fn engine(&self, tier: Tier) -> &Engine {
        match tier {
            Tier::Optimizing => &self.optimizing,
            Tier::Linear => &self.linear,
        }
    }

    /// Compiles `bytes` (cached by `sha256`), refusing modules over the compile budget
    /// ([`Failure::Budget`]), not compiled by the deadline ([`Failure::Busy`], not cached: the
    /// compile still finishes and serves a later load), imports other than `tally.<name>` for
    /// names in `offered`, and modules that lack the ABI's exports ([`Failure::Load`]).
    pub fn load(&self, bytes: &[u8], offered: &[&str]) -> Result<Module, Failure> {
        self.load_until(bytes, offered, Instant::now() + self.deadline)
    }

    /// [`WasmRuntime::load`], waiting for a compile until `until` at the latest (and never
    /// longer than the compile deadline): a caller with its own deadline gets
    /// [`Failure::Busy`] in time instead of a module too late.
    pub fn load_until(
        &self,
        bytes: &[u8],
        offered: &[&str],
        until: Instant,
    ) -> Result<Module, Failure> {
        let id = tally_core::sha256(bytes);
        let cached = self.cache.lock().ok().and_then(|mut c| c.get(&id));
        let module = match cached {
            // a cached module has the ABI's exports; its imports are checked against `offered`
            Some(r) => r?,
            None => {
                if let Ok(mut c) = self.cache.lock() {
                    c.checked += 1;
                }
                let checked = match budget::check(bytes, &self.budget) {
                    Ok(c) => c,
                    Err(r) => {
                        let f = match r {
                            Refusal::Invalid(_) => Failure::Load(r.to_string()),
                            Refusal::OverBudget(_) => Failure::Budget(r.to_string()),
                        };
                        self.refuse(id, &f);
                        return Err(f);
                    }
                };
                // the exports never depend on the family: without the ABI, refused for good
                if let Err(f) = check_exports(&checked.exports) {
                    self.refuse(id, &f);
                    return Err(f);
                }
                check_imports(
                    checked
                        .imports
                        .iter()
                        .map(|i| (i.module.as_str(), i.name.as_str(), i.func)),
                    offered,
                )?;
                return self.compile(id, bytes, checked.tier, until);
            }
        };
        check_imports(
            module
                .imports()
                .map(|i| (i.module(), i.name(), matches!(i.ty(), ExternType::Func(_)))),
            offered,
        )?;
        Ok(module)
    }

    fn refuse(&self, id: Hash32, f: &Failure) {
        if let Ok(mut c) = self.cache.lock() {
            c.refused.insert(id, f.clone());
        }
    }

    /// Hands `bytes` to the compile thread (unless it is queued or compiling already) and waits
    /// for it at most the deadline, and not past `until`.
    fn compile(
        &self,
        id: Hash32,
        bytes: &[u8],
        tier: Tier,
        until: Instant,
    ) -> Result<Module, Failure> {
        let (reply, answer) = mpsc::sync_channel(1);
        let me = {
            let mut c = self
                .cache
                .lock()
                .map_err(|_| Failure::Load("the module cache is poisoned".into()))?;
            if let Some(r) = c.get(&id) {
                return r;
            }
            let me = c.waiter;
            c.waiter += 1;
            match c.pending.get_mut(&id) {
                Some(waiting) if waiting.len() >= WAITERS => {
                    return Err(Failure::Busy(format!(
                        "{WAITERS} loads already wait for this module's compile: not compiled \
                         this time"
                    )))
                }
                Some(waiting) => waiting.push((me, reply)),
                None => {
                    let job = Job {
                        id,
                        bytes: bytes.to_vec(),
                        tier,
                    };
                    match self.jobs.try_send(job) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            return Err(Failure::Busy(format!(
                                "compile queue full ({COMPILE_QUEUE} modules waiting): not \
                                 compiled this time"
                            )))
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            return Err(Failure::Busy("the compile thread has stopped".into()))
                        }
                    }
                    c.pending.insert(id, vec![(me, reply)]);
                }
            }
            me
        };
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(self.deadline);
        match answer.recv_timeout(wait) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                // stop waiting: the compile goes on and its outcome is cached for a later load
                if let Ok(mut c) = self.cache.lock() {
                    if let Some(waiting) = c.pending.get_mut(&id) {
                        waiting.retain(|(n, _)| *n != me);
                    }
                }
                Err(Failure::Busy(format!(
                    "compile deadline: not compiled within {:.1} s",
                    wait.as_secs_f64()
                )))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(Failure::Busy("the compile thread has stopped".into()))
            }
        }
    }

    /// Runs `module` on `input` under `limits`; `job_id` labels its tool calls.
    pub fn run(&self, module: &Module, input: &[u8], limits: &Limits, job_id: &str) -> RunResult {
        let start = Instant::now();
        let job: String = job_id.chars().take(MAX_JOB_ID).collect();
        let state = State {
            limits: Cap {
                cap: limits.memory_bytes,
                memory: 0,
                tables: 0,
            },
            job_id: job,
            calls: Vec::new(),
        };
        let engine = module.engine();
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        let result = |store: &mut Store<State>| -> Result<Vec<u8>, Failure> {
            store
                .set_fuel(limits.fuel)
                .map_err(|e| Failure::Load(e.to_string()))?;
            store.set_epoch_deadline((limits.wall.as_millis() as u64 / TICK_MS).max(1));
            let mut linker: Linker<State> = Linker::new(engine);
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
