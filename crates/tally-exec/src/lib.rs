//! Validator-side execution.
//!
//! * [`runtime`]: the wasm sandbox (wasmtime): fuel metering (start function included), a memory
//!   limit, a wall-clock watchdog, deterministic floats (NaN canonicalization, no threads, no
//!   relaxed SIMD), and no imports but the host functions of module `tally` that the family
//!   offers. Every failure is an [`runtime::Failure`] with its reason, never a crash.
//! * [`family`]: task families: tasks from the challenge seed, a reference the validator
//!   computes itself, and a score from an answer and its measurements.
//! * [`inference`]: the built-in `inference` family (a reference MLP run faithfully and
//!   efficiently).
//! * [`budget`]: the compile budget, checked before compiling: size, function count, body size,
//!   locals, nesting, compile work, and initial memory plus tables against the memory cap.
//! * [`archive`]: the content-addressed, size-bounded archive cache that refuses bytes not
//!   hashing to the roster's pin.
//! * [`adversarial`]: hostile modules (for the compile-budget tests and measurements).
//! * [`safetensors`]: loading the reference MLP from a safetensors file.
//! * [`builder`]: the miner builder that emits submissions with `wasm-encoder`.
//!
//! # The ABI
//!
//! A submission is a wasm module that exports `memory`, `alloc(len: i32) -> i32` (returns a
//! pointer to `len` writable bytes, or 0) and `run(ptr: i32, len: i32) -> i64` (reads the task
//! input at `ptr..ptr+len` and returns `(out_ptr << 32) | out_len`). Its only imports may be
//! host functions in module `tally` offered by the family, e.g.
//! `tally.tool(kind: i32, ptr: i32, len: i32) -> i32`, which records a tool call in the
//! validator's ledger under the job id `task-eval={task_id};deployment={id}` and returns 0.
#![forbid(unsafe_code)]

pub mod adversarial;
pub mod archive;
pub mod budget;
pub mod builder;
pub mod family;
pub mod inference;
pub mod runtime;
pub mod safetensors;

pub use family::{Family, Measured, Task};
pub use runtime::{Failure, Limits, WasmRuntime};
