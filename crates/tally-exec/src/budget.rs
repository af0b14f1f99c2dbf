//! The compile budget: what a submission may ask of the compiler and of an instance, checked
//! before a byte of it is compiled.
//!
//! [`check`] validates the module with `wasmparser` (the parser wasmtime itself uses, so it
//! costs no extra build) and measures, per function and over the module, the quantities that
//! drive the cost of compiling it with Cranelift:
//!
//! * size: the module, the code section, each function body;
//! * counts: functions, types, imports, exports, globals, data and element segments;
//! * per function: locals (parameters included), the deepest control nesting and the highest
//!   operand stack;
//! * **work**, the sum over functions of `(locals + highest stack) x (branch edges + 1)`, where
//!   branch edges are the control constructs (`block`, `loop`, `if`, `else`) and branch
//!   targets (`br`, `br_if`, `br_on_null`, `br_on_non_null`, every `br_table` entry). SSA construction gives every
//!   merge point a parameter per live local, so this product, not the size, is what a small
//!   module of nested loops over many locals inflates (the review's 50 KB module took 12 s and
//!   630 MB to compile);
//! * state an instance must allocate before running a single instruction: initial memory
//!   bytes plus initial table elements x [`TABLE_ELEMENT_BYTES`], against one memory cap.
//!
//! A module over any limit is refused with [`Refusal::OverBudget`] naming the limit and the
//! value; a module that does not parse or validate with [`Refusal::Invalid`]. A module within
//! budget comes back as a [`Checked`] summary whose [`Tier`] says how to compile it: small work
//! with the optimizing register allocator (the honest reference submissions are here, far below
//! the threshold), larger work with the single-pass allocator and no optimization passes,
//! whose cost is linear in the code. Fuel is counted on wasm operators before either compiler
//! runs, so both tiers meter a submission identically.
//!
//! The limits ([`Budget::default`]) were measured on a 2-core machine: the worst module within
//! them compiles in well under the 5 s and 512 MB a validator may spend (see BENCHMARKS.md,
//! "Compile budget").

use thiserror::Error;
use wasmparser::{
    BinaryReader, Encoding, ExternalKind, FuncValidatorAllocations, Operator, OperatorsReader,
    Parser, Payload, TypeRef, ValidPayload, Validator, WasmFeatures,
};

/// The largest archive a roster may pin (equal to the owner's upload cap,
/// `tally_node::submissions::MAX_ARCHIVE`, and the validators' archive cache cap).
pub const MAX_ARCHIVE: usize = 8 << 20;

/// Bytes one table element costs an instance (wasmtime keeps a pointer per element).
pub const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// Bytes of a default wasm page.
const PAGE: u32 = 16;

/// What a submission may ask of the compiler and of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Largest module, in bytes.
    pub max_bytes: usize,
    /// Largest code section (all function bodies), in bytes.
    pub max_code_bytes: usize,
    /// Most defined functions.
    pub max_functions: u32,
    /// Largest function body, in bytes.
    pub max_body_bytes: usize,
    /// Most locals of one function, parameters included.
    pub max_locals: u32,
    /// Deepest control nesting (`block`/`loop`/`if` frames, the body's own included).
    pub max_nesting: u32,
    /// Highest operand stack of one function.
    pub max_stack: u32,
    /// Most work (see the module docs) over the module.
    pub max_work: u64,
    /// Work up to which a module is compiled by the optimizing tier.
    pub optimize_work: u64,
    /// Largest initial memory plus initial tables, in bytes (the run's memory cap).
    pub memory_bytes: u64,
    /// Most memories.
    pub max_memories: u32,
    /// Most tables.
    pub max_tables: u32,
    /// Most types (recursion groups).
    pub max_types: u32,
    /// Most imports.
    pub max_imports: u32,
    /// Most exports.
    pub max_exports: u32,
    /// Most globals.
    pub max_globals: u32,
    /// Most data segments.
    pub max_data_segments: u32,
    /// Most element segments.
    pub max_element_segments: u32,
    /// Most element entries over all element segments.
    pub max_elements: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_bytes: MAX_ARCHIVE,
            max_code_bytes: 1 << 20,
            max_functions: 1_000,
            max_body_bytes: 128 << 10,
            max_locals: 1_000,
            max_nesting: 256,
            max_stack: 1_000,
            max_work: 400_000,
            optimize_work: 10_000,
            memory_bytes: 64 << 20,
            max_memories: 1,
            max_tables: 4,
            max_types: 1_000,
            max_imports: 64,
            max_exports: 256,
            max_globals: 1_000,
            max_data_segments: 1_000,
            max_element_segments: 1_000,
            max_elements: 1 << 20,
        }
    }
}

/// How a module within budget is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Cranelift's optimizations and backtracking register allocator: fast code, cost
    /// superlinear in work, so only for work up to [`Budget::optimize_work`].
    Optimizing,
    /// No optimization passes and the single-pass register allocator: cost linear in the code.
    Linear,
}

/// One import of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// Module name.
    pub module: String,
    /// Item name.
    pub name: String,
    /// Whether it is a function.
    pub func: bool,
}

/// What [`check`] measured of a module within budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// How to compile it.
    pub tier: Tier,
    /// Module bytes.
    pub bytes: usize,
    /// Defined functions.
    pub functions: u32,
    /// Code section bytes.
    pub code_bytes: usize,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Most locals of one function.
    pub max_locals: u32,
    /// Deepest nesting.
    pub max_nesting: u32,
    /// Highest operand stack.
    pub max_stack: u32,
    /// Work over the module.
    pub work: u64,
    /// Initial memory plus tables, in bytes.
    pub static_bytes: u64,
    /// Imports, in order.
    pub imports: Vec<Import>,
    /// Exports: name and kind (`func`, `memory`, `table`, `global`, `tag`).
    pub exports: Vec<(String, &'static str)>,
}

/// Why a module is refused before compiling.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    /// It does not parse or validate.
    #[error("not a valid wasm module: {0}")]
    Invalid(String),
    /// It is over a limit of the budget.
    #[error("over budget: {0}")]
    OverBudget(String),
}

fn invalid(e: wasmparser::Error) -> Refusal {
    Refusal::Invalid(e.to_string())
}

fn limit(what: &str, value: u64, max: u64) -> Result<(), Refusal> {
    if value > max {
        Err(Refusal::OverBudget(format!(
            "{what}: {value}, over the limit of {max}"
        )))
    } else {
        Ok(())
    }
}

/// The branch edges an operator adds (see the module docs).
fn edges(op: &Operator<'_>) -> u64 {
    match op {
        Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::If { .. }
        | Operator::Else
        | Operator::Br { .. }
        | Operator::BrIf { .. }
        | Operator::BrOnNull { .. }
        | Operator::BrOnNonNull { .. } => 1,
        Operator::BrTable { targets } => u64::from(targets.len()) + 1,
        _ => 0,
    }
}

#[derive(Default)]
struct Tally {
    functions: u32,
    code_bytes: usize,
    max_body_bytes: usize,
    max_locals: u32,
    max_nesting: u32,
    max_stack: u32,
    work: u64,
    static_bytes: u64,
    memories: u32,
    tables: u32,
    elements: u64,
    imports: Vec<Import>,
    exports: Vec<(String, &'static str)>,
}

impl Tally {
    fn add_static(&mut self, what: &str, bytes: u64, b: &Budget) -> Result<(), Refusal> {
        self.static_bytes = self.static_bytes.saturating_add(bytes);
        if self.static_bytes > b.memory_bytes {
            return Err(Refusal::OverBudget(format!(
                "initial memory and tables of {} bytes (with the {what}) are over the \
                 {}-byte memory cap",
                self.static_bytes, b.memory_bytes
            )));
        }
        Ok(())
    }

    fn memory(&mut self, m: &wasmparser::MemoryType, b: &Budget) -> Result<(), Refusal> {
        self.memories += 1;
        limit("memories", self.memories.into(), b.max_memories.into())?;
        let shift = m.page_size_log2.unwrap_or(PAGE).min(64);
        let bytes = u64::try_from(u128::from(m.initial) << shift).unwrap_or(u64::MAX);
        self.add_static(&format!("memory of {} pages", m.initial), bytes, b)
    }

    fn table(&mut self, t: &wasmparser::TableType, b: &Budget) -> Result<(), Refusal> {
        self.tables += 1;
        limit("tables", self.tables.into(), b.max_tables.into())?;
        let bytes = t.initial.saturating_mul(TABLE_ELEMENT_BYTES);
        self.add_static(&format!("table of {} elements", t.initial), bytes, b)
    }

    /// Validates one function body and measures it.
    fn function(
        &mut self,
        func: wasmparser::FuncToValidate<wasmparser::ValidatorResources>,
        body: wasmparser::FunctionBody<'_>,
        allocs: FuncValidatorAllocations,
        b: &Budget,
    ) -> Result<FuncValidatorAllocations, Refusal> {
        let index = self.functions;
        self.functions += 1;
        let size = body.range().len();
        if size > b.max_body_bytes {
            return Err(Refusal::OverBudget(format!(
                "function {index}: body of {size} bytes is over the limit of {}",
                b.max_body_bytes
            )));
        }
        self.max_body_bytes = self.max_body_bytes.max(size);
        let mut fv = func.into_validator(allocs);
        let mut reader: BinaryReader<'_> = body.get_binary_reader();
        let groups = reader.read_var_u32().map_err(invalid)?;
        for _ in 0..groups {
            let pos = reader.original_position();
            let count: u32 = reader.read().map_err(invalid)?;
            let total = u64::from(fv.len_locals()) + u64::from(count);
            if total > u64::from(b.max_locals) {
                return Err(Refusal::OverBudget(format!(
                    "function {index}: {total} locals are over the limit of {}",
                    b.max_locals
                )));
            }
            let ty = reader.read().map_err(invalid)?;
            fv.define_locals(pos, count, ty).map_err(invalid)?;
        }
        let locals = fv.len_locals();
        if locals > b.max_locals {
            return Err(Refusal::OverBudget(format!(
                "function {index}: {locals} locals are over the limit of {}",
                b.max_locals
            )));
        }
        self.max_locals = self.max_locals.max(locals);
        let mut ops = OperatorsReader::new(reader);
        let (mut nesting, mut stack, mut branch) = (0u32, 0u32, 0u64);
        while !ops.eof() {
            let pos = ops.original_position();
            let op = ops.read().map_err(invalid)?;
            branch = branch.saturating_add(edges(&op));
            fv.op(pos, &op).map_err(invalid)?;
            nesting = nesting.max(fv.control_stack_height());
            stack = stack.max(fv.operand_stack_height());
            if nesting > b.max_nesting {
                return Err(Refusal::OverBudget(format!(
                    "function {index}: nesting depth {nesting} is over the limit of {}",
                    b.max_nesting
                )));
            }
            if stack > b.max_stack {
                return Err(Refusal::OverBudget(format!(
                    "function {index}: operand stack height {stack} is over the limit of {}",
                    b.max_stack
                )));
            }
        }
        ops.finish().map_err(invalid)?;
        self.max_nesting = self.max_nesting.max(nesting);
        self.max_stack = self.max_stack.max(stack);
        let work = (u64::from(locals) + u64::from(stack)).saturating_mul(branch + 1);
        self.work = self.work.saturating_add(work);
        if self.work > b.max_work {
            return Err(Refusal::OverBudget(format!(
                "compile work {} (function {index}: {} locals + {stack} stack x {} branch \
                 edges) is over the limit of {}",
                self.work,
                locals,
                branch + 1,
                b.max_work
            )));
        }
        Ok(fv.into_allocations())
    }
}

fn kind(k: ExternalKind) -> &'static str {
    match k {
        ExternalKind::Func | ExternalKind::FuncExact => "func",
        ExternalKind::Memory => "memory",
        ExternalKind::Table => "table",
        ExternalKind::Global => "global",
        ExternalKind::Tag => "tag",
    }
}

/// The features submissions may use: wasmparser's defaults without threads and relaxed SIMD
/// (off in the engine for determinism) and without the proposals this wasmtime build does not
/// compile (GC, exceptions, stack switching, components).
fn features() -> WasmFeatures {
    let mut f = WasmFeatures::default();
    for off in [
        WasmFeatures::THREADS,
        WasmFeatures::SHARED_EVERYTHING_THREADS,
        WasmFeatures::RELAXED_SIMD,
        WasmFeatures::GC,
        WasmFeatures::EXCEPTIONS,
        WasmFeatures::LEGACY_EXCEPTIONS,
        WasmFeatures::STACK_SWITCHING,
        WasmFeatures::COMPONENT_MODEL,
    ] {
        f.remove(off);
    }
    f
}

/// Validates `bytes` and measures it against `budget`, before any compiling.
pub fn check(bytes: &[u8], budget: &Budget) -> Result<Checked, Refusal> {
    let b = budget;
    if bytes.len() > b.max_bytes {
        return Err(Refusal::OverBudget(format!(
            "module of {} bytes is over the {}-byte archive cap",
            bytes.len(),
            b.max_bytes
        )));
    }
    let mut v = Validator::new_with_features(features());
    let mut t = Tally::default();
    let mut allocs = FuncValidatorAllocations::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        // counts and sizes first, so an oversized section is refused before it is validated
        match &payload {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => return Err(Refusal::Invalid("a component, not a core module".into())),
            Payload::TypeSection(r) => limit("types", r.count().into(), b.max_types.into())?,
            Payload::ImportSection(r) => {
                for imp in r.clone().into_imports() {
                    let imp = imp.map_err(invalid)?;
                    t.imports.push(Import {
                        module: imp.module.chars().take(64).collect(),
                        name: imp.name.chars().take(64).collect(),
                        func: matches!(imp.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)),
                    });
                    limit("imports", t.imports.len() as u64, b.max_imports.into())?;
                    match imp.ty {
                        TypeRef::Memory(m) => t.memory(&m, b)?,
                        TypeRef::Table(tt) => t.table(&tt, b)?,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(r) => {
                limit("functions", r.count().into(), b.max_functions.into())?
            }
            Payload::TableSection(r) => {
                for tb in r.clone() {
                    t.table(&tb.map_err(invalid)?.ty, b)?;
                }
            }
            Payload::MemorySection(r) => {
                for m in r.clone() {
                    t.memory(&m.map_err(invalid)?, b)?;
                }
            }
            Payload::GlobalSection(r) => limit("globals", r.count().into(), b.max_globals.into())?,
            Payload::ExportSection(r) => {
                limit("exports", r.count().into(), b.max_exports.into())?;
                for e in r.clone() {
                    let e = e.map_err(invalid)?;
                    t.exports
                        .push((e.name.chars().take(64).collect(), kind(e.kind)));
                }
            }
            Payload::ElementSection(r) => {
                limit(
                    "element segments",
                    r.count().into(),
                    b.max_element_segments.into(),
                )?;
                for e in r.clone() {
                    let n = match e.map_err(invalid)?.items {
                        wasmparser::ElementItems::Functions(f) => f.count(),
                        wasmparser::ElementItems::Expressions(_, x) => x.count(),
                    };
                    t.elements = t.elements.saturating_add(n.into());
                    limit("element entries", t.elements, b.max_elements)?;
                }
            }
            Payload::DataSection(r) => limit(
                "data segments",
                r.count().into(),
                b.max_data_segments.into(),
            )?,
            Payload::CodeSectionStart { count, size, .. } => {
                limit("functions", (*count).into(), b.max_functions.into())?;
                limit(
                    "code section bytes",
                    (*size).into(),
                    b.max_code_bytes as u64,
                )?;
                t.code_bytes = *size as usize;
            }
            _ => {}
        }
        match v.payload(&payload).map_err(invalid)? {
            ValidPayload::Ok | ValidPayload::End(_) => {}
            ValidPayload::Func(func, body) => {
                allocs = t.function(func, body, allocs, b)?;
            }
            ValidPayload::Parser(_) => {
                return Err(Refusal::Invalid("nested modules are not supported".into()))
            }
        }
    }
    let tier = if t.work <= b.optimize_work {
        Tier::Optimizing
    } else {
        Tier::Linear
    };
    Ok(Checked {
        tier,
        bytes: bytes.len(),
        functions: t.functions,
        code_bytes: t.code_bytes,
        max_body_bytes: t.max_body_bytes,
        max_locals: t.max_locals,
        max_nesting: t.max_nesting,
        max_stack: t.max_stack,
        work: t.work,
        static_bytes: t.static_bytes,
        imports: t.imports,
        exports: t.exports,
    })
}
