//! Hostile submissions, built with `wasm-encoder`, for the compile-budget tests and
//! measurements.
//!
//! Every module here has the submission ABI (`memory`, `alloc`, `run`; `run` returns an empty
//! output), so whatever stops it is the cost of compiling or instantiating it, never a missing
//! export. Each [`Shape`] stresses one axis: code the compiler finds expensive (nested loops over
//! many locals, deep nesting, huge bodies, many functions, a huge `br_table`), or state an
//! instance must allocate (a big static table, a big initial memory, many globals).

use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, DataSection, ElementSection, Elements, ExportKind,
    ExportSection, Function, FunctionSection, GlobalSection, GlobalType, IndirectNameMap,
    Instruction as I, MemorySection, MemoryType, Module, NameMap, NameSection, RefType,
    TableSection, TableType, TypeSection, ValType,
};

/// One kind of hostile module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `funcs` functions, each with `locals` i32 locals and `depth` nested loops; the innermost
    /// loop updates every local, and each loop branches back while the counter is non-zero (the
    /// review's 50 KB module that took 12 s and 630 MB to compile was of this kind: the
    /// compiler's cost grows with locals x loops while the size grows with locals + loops).
    LoopNest {
        /// Functions.
        funcs: u32,
        /// i32 locals per function.
        locals: u32,
        /// Loops nested in each function.
        depth: u32,
    },
    /// Like [`Shape::LoopNest`] with blocks instead of loops: every block may be left early
    /// (`br_if`) and the innermost one updates every local, so each block end merges every
    /// local.
    BlockNest {
        /// Functions.
        funcs: u32,
        /// i32 locals per function.
        locals: u32,
        /// Blocks nested in each function.
        depth: u32,
    },
    /// `funcs` functions that each push `values` constants before adding them all up (that many
    /// values live at once, without a single local).
    StackPressure {
        /// Functions.
        funcs: u32,
        /// Values on the operand stack at the peak.
        values: u32,
    },
    /// One function with `depth` nested blocks.
    DeepNesting {
        /// Nesting depth.
        depth: u32,
    },
    /// `funcs` functions of about `bytes` bytes of straight-line code each, over a few locals.
    HugeBody {
        /// Functions.
        funcs: u32,
        /// Body size of each.
        bytes: u32,
    },
    /// `count` small functions (each a short loop).
    ManyFunctions {
        /// Functions.
        count: u32,
    },
    /// A funcref table with `elements` initial elements, every slot filled by an element
    /// segment of `filled` entries.
    Table {
        /// Initial (and only) size.
        elements: u64,
        /// Entries of the active element segment at offset 0.
        filled: u32,
    },
    /// The exported memory with `pages` initial pages and no maximum.
    Memory {
        /// Initial pages (64 KiB each).
        pages: u64,
    },
    /// One function declaring `locals` locals (of mixed types) and touching each once.
    ManyLocals {
        /// Declared locals.
        locals: u32,
    },
    /// One function with a `br_table` of `targets` targets.
    BrTable {
        /// Targets.
        targets: u32,
    },
    /// `count` mutable i64 globals.
    Globals {
        /// Globals.
        count: u32,
    },
    /// A `name` section naming `locals` locals of each of `funcs` functions (wasmtime parses
    /// it for backtraces).
    Names {
        /// Functions named (and defined, each with `locals` locals).
        funcs: u32,
        /// Local names per function.
        locals: u32,
    },
    /// `run` reads memory at pseudo-random addresses until fuel runs out, over a memory of
    /// `pages` pages: the most wall time per unit of fuel this module knows (cache misses).
    Scatter {
        /// Memory pages.
        pages: u64,
    },
    /// `run` calls, forever, a function that declares `locals` locals (each call zeroes them
    /// all for a few units of fuel): wall time per unit of fuel, by way of frames.
    FatCalls {
        /// Locals of the called function.
        locals: u32,
    },
    /// An active data segment of `bytes` bytes at address 0 (with a memory big enough for it).
    Data {
        /// Segment size.
        bytes: u32,
    },
}

fn i32s(n: u32) -> Vec<(u32, ValType)> {
    vec![(n, ValType::I32)]
}

fn loop_nest(locals: u32, depth: u32) -> Function {
    // param 0 is the counter; locals 1..=locals are the ones worked on
    let mut f = Function::new(i32s(locals));
    for _ in 0..depth {
        f.instruction(&I::Loop(BlockType::Empty));
    }
    // the innermost loop works on every local: each loop header then carries every local
    for l in 1..=locals {
        f.instruction(&I::LocalGet(l))
            .instruction(&I::LocalGet(l.saturating_sub(1)))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(l));
    }
    for _ in 0..depth {
        // the back edge of the innermost open loop, after everything nested in it
        f.instruction(&I::LocalGet(0))
            .instruction(&I::I32Const(1))
            .instruction(&I::I32Sub)
            .instruction(&I::LocalTee(0))
            .instruction(&I::BrIf(0))
            .instruction(&I::End);
    }
    f.instruction(&I::LocalGet(locals.min(1)));
    f.instruction(&I::End);
    f
}

fn block_nest(locals: u32, depth: u32) -> Function {
    let mut f = Function::new(i32s(locals));
    for _ in 0..depth {
        f.instruction(&I::Block(BlockType::Empty))
            .instruction(&I::LocalGet(0))
            .instruction(&I::BrIf(0));
    }
    for l in 1..=locals {
        f.instruction(&I::LocalGet(l))
            .instruction(&I::LocalGet(l.saturating_sub(1)))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(l));
    }
    for _ in 0..depth {
        f.instruction(&I::End);
    }
    for l in 1..=locals {
        f.instruction(&I::LocalGet(0))
            .instruction(&I::LocalGet(l))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(0));
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

fn stack_pressure(values: u32) -> Function {
    let mut f = Function::new([]);
    f.instruction(&I::LocalGet(0));
    for v in 0..values {
        f.instruction(&I::I32Const(v as i32 ^ 0x55));
    }
    for _ in 0..values {
        f.instruction(&I::I32Add);
    }
    f.instruction(&I::End);
    f
}

fn deep_nesting(depth: u32) -> Function {
    let mut f = Function::new([]);
    for _ in 0..depth {
        f.instruction(&I::Block(BlockType::Empty));
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::BrIf(0));
    for _ in 0..depth {
        f.instruction(&I::End);
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

fn huge_body(bytes: u32) -> Function {
    // each round is 14 bytes: a = a * b + c ... over three locals
    let mut f = Function::new(i32s(2));
    for r in 0..bytes / 14 {
        let (a, b, c) = (r % 3, (r + 1) % 3, (r + 2) % 3);
        f.instruction(&I::LocalGet(a))
            .instruction(&I::LocalGet(b))
            .instruction(&I::I32Mul)
            .instruction(&I::LocalGet(c))
            .instruction(&I::I32Add)
            .instruction(&I::I32Const(0x1234))
            .instruction(&I::I32Xor)
            .instruction(&I::LocalSet(a));
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

fn many_locals(locals: u32) -> Function {
    let kinds = [ValType::I32, ValType::I64, ValType::F32, ValType::F64];
    let per = locals / 4;
    let mut f = Function::new(kinds.iter().map(|k| (per, *k)).collect::<Vec<_>>());
    for l in 1..=per * 4 {
        // every local live at once: read each, drop it
        f.instruction(&I::LocalGet(l)).instruction(&I::Drop);
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

fn br_table(targets: u32) -> Function {
    let mut f = Function::new([]);
    f.instruction(&I::Block(BlockType::Empty))
        .instruction(&I::Block(BlockType::Empty));
    let labels: Vec<u32> = (0..targets).map(|i| i % 2).collect();
    f.instruction(&I::LocalGet(0))
        .instruction(&I::BrTable(labels.into(), 0));
    f.instruction(&I::End).instruction(&I::End);
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

/// The module of `shape`.
pub fn build(shape: Shape) -> Vec<u8> {
    build_all(&[shape])
}

fn functions(shape: Shape) -> Vec<Function> {
    match shape {
        Shape::LoopNest {
            funcs,
            locals,
            depth,
        } => (0..funcs).map(|_| loop_nest(locals, depth)).collect(),
        Shape::BlockNest {
            funcs,
            locals,
            depth,
        } => (0..funcs).map(|_| block_nest(locals, depth)).collect(),
        Shape::StackPressure { funcs, values } => {
            (0..funcs).map(|_| stack_pressure(values)).collect()
        }
        Shape::DeepNesting { depth } => vec![deep_nesting(depth)],
        Shape::HugeBody { funcs, bytes } => (0..funcs).map(|_| huge_body(bytes)).collect(),
        Shape::ManyFunctions { count } => (0..count).map(|_| loop_nest(2, 1)).collect(),
        Shape::ManyLocals { locals } => vec![many_locals(locals)],
        Shape::BrTable { targets } => vec![br_table(targets)],
        Shape::Names { funcs, locals } => (0..funcs).map(|_| many_locals(locals)).collect(),
        Shape::FatCalls { locals } => {
            let mut f = Function::new(vec![(locals, ValType::I64)]);
            f.instruction(&I::LocalGet(0)).instruction(&I::End);
            vec![f]
        }
        Shape::Table { .. }
        | Shape::Memory { .. }
        | Shape::Globals { .. }
        | Shape::Data { .. }
        | Shape::Scatter { .. } => Vec::new(),
    }
}

/// One module with the functions and state of every shape in `shapes` (the largest memory
/// and table asked for, globals and data summed).
pub fn build_all(shapes: &[Shape]) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    // 0: alloc and every extra function, (i32) -> i32; 1: run
    types.ty().function([ValType::I32], [ValType::I32]);
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I64]);
    m.section(&types);

    let extra: Vec<Function> = shapes.iter().flat_map(|s| functions(*s)).collect();
    let mut funcs = FunctionSection::new();
    funcs.function(0).function(1);
    for _ in &extra {
        funcs.function(0);
    }
    m.section(&funcs);

    let (mut table, mut filled, mut pages, mut globals, mut data) = (None, 0u32, 1u64, 0u32, 0u32);
    for s in shapes {
        match *s {
            Shape::Table {
                elements,
                filled: f,
            } => {
                table = Some(table.unwrap_or(0).max(elements));
                filled = filled.max(f);
            }
            Shape::Memory { pages: p } | Shape::Scatter { pages: p } => pages = pages.max(p),
            Shape::Globals { count } => globals += count,
            Shape::Data { bytes } => data += bytes,
            _ => {}
        }
    }
    pages = pages.max(u64::from(data).div_ceil(65536));
    if let Some(elements) = table {
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: elements,
            maximum: Some(elements),
            shared: false,
        });
        m.section(&tables);
    }
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: pages,
        maximum: if pages == 1 { Some(1) } else { None },
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    if globals > 0 {
        let mut gs = GlobalSection::new();
        for i in 0..globals {
            gs.global(
                GlobalType {
                    val_type: ValType::I64,
                    mutable: true,
                    shared: false,
                },
                &ConstExpr::i64_const(i as i64),
            );
        }
        m.section(&gs);
    }
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("alloc", ExportKind::Func, 0);
    exports.export("run", ExportKind::Func, 1);
    m.section(&exports);
    if table.is_some() && filled > 0 {
        let mut elems = ElementSection::new();
        let idx: Vec<u32> = vec![0; filled as usize];
        elems.active(
            Some(0),
            &ConstExpr::i32_const(0),
            Elements::Functions(idx.into()),
        );
        m.section(&elems);
    }

    let mut code = CodeSection::new();
    let mut alloc = Function::new([]);
    alloc.instruction(&I::I32Const(1024)).instruction(&I::End);
    code.function(&alloc);
    let mut run = Function::new([]);
    if let Some(pages) = shapes.iter().find_map(|s| match s {
        Shape::Scatter { pages } => Some(*pages),
        _ => None,
    }) {
        // touch every 4 KiB page first (so loads hit real memory, not the shared zero page),
        // then x = x * 1103515245 + 12345; load at (x & mask) & !7, forever
        let size = pages.saturating_mul(65536).min(1 << 31) as i32;
        let mask = size.saturating_sub(8) & !7;
        let mem = wasm_encoder::MemArg {
            offset: 0,
            align: 3,
            memory_index: 0,
        };
        run.instruction(&I::Block(BlockType::Empty))
            .instruction(&I::Loop(BlockType::Empty))
            .instruction(&I::LocalGet(1))
            .instruction(&I::I32Const(size))
            .instruction(&I::I32GeU)
            .instruction(&I::BrIf(1))
            .instruction(&I::LocalGet(1))
            .instruction(&I::I64Const(1))
            .instruction(&I::I64Store(mem))
            .instruction(&I::LocalGet(1))
            .instruction(&I::I32Const(4096))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(1))
            .instruction(&I::Br(0))
            .instruction(&I::End)
            .instruction(&I::End);
        run.instruction(&I::Loop(BlockType::Empty))
            .instruction(&I::LocalGet(0))
            .instruction(&I::I32Const(1_103_515_245))
            .instruction(&I::I32Mul)
            .instruction(&I::I32Const(12_345))
            .instruction(&I::I32Add)
            .instruction(&I::LocalTee(0))
            .instruction(&I::I32Const(mask))
            .instruction(&I::I32And)
            .instruction(&I::I64Load(mem))
            .instruction(&I::I32WrapI64)
            .instruction(&I::LocalGet(1))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(1))
            .instruction(&I::Br(0))
            .instruction(&I::End);
    }
    if shapes.iter().any(|s| matches!(s, Shape::FatCalls { .. })) {
        // the first extra function is the fat one when FatCalls comes first
        run.instruction(&I::Loop(BlockType::Empty))
            .instruction(&I::LocalGet(0))
            .instruction(&I::Call(2))
            .instruction(&I::LocalSet(0))
            .instruction(&I::Br(0))
            .instruction(&I::End);
    }
    run.instruction(&I::I64Const(0)).instruction(&I::End);
    code.function(&run);
    for f in &extra {
        code.function(f);
    }
    m.section(&code);
    if data > 0 {
        let mut ds = DataSection::new();
        let bytes: Vec<u8> = (0..data).map(|i| (i % 251) as u8).collect();
        ds.active(0, &ConstExpr::i32_const(0), bytes);
        m.section(&ds);
    }
    let named: Vec<(u32, u32)> = shapes
        .iter()
        .filter_map(|s| match s {
            Shape::Names { funcs, locals } => Some((*funcs, *locals)),
            _ => None,
        })
        .collect();
    if !named.is_empty() {
        let mut names = NameSection::new();
        let mut all = IndirectNameMap::new();
        let mut index = 2;
        for (funcs, locals) in named {
            for _ in 0..funcs {
                let mut map = NameMap::new();
                for l in 0..locals {
                    map.append(l, &format!("a_rather_long_local_name_{l:08}"));
                }
                all.append(index, &map);
                index += 1;
            }
        }
        names.locals(&all);
        m.section(&names);
    }
    m.finish()
}

/// The largest [`Shape::LoopNest`] of `locals` locals and `depth` loops per function that fits
/// in `bytes` (at least one function).
pub fn loop_nest_of_size(bytes: usize, locals: u32, depth: u32) -> Vec<u8> {
    let size = |funcs| {
        build(Shape::LoopNest {
            funcs,
            locals,
            depth,
        })
    };
    let base = size(0).len();
    let per = size(1).len().saturating_sub(base).max(1);
    let mut funcs = (bytes.saturating_sub(base) / per).max(1) as u32;
    loop {
        let m = size(funcs);
        if m.len() <= bytes || funcs == 1 {
            return m;
        }
        funcs -= 1;
    }
}

/// The most expensive modules this module knows how to build that stay within the default
/// [`crate::budget::Budget`], each pressing one limit (or several) as far as it goes: what the
/// budget's worst case is measured on.
pub fn worst_within() -> Vec<(&'static str, Vec<u8>)> {
    let b = crate::budget::Budget::default();
    let table_elements = (b.memory_bytes - 65536) / crate::budget::TABLE_ELEMENT_BYTES;
    vec![
        // compile work at the limit in one function, in the linear tier
        (
            "work-blocks",
            build(Shape::BlockNest {
                funcs: 1,
                locals: 990,
                depth: 199,
            }),
        ),
        (
            "work-loops",
            build(Shape::LoopNest {
                funcs: 1,
                locals: 990,
                depth: 199,
            }),
        ),
        // the same work spread over many functions
        (
            "work-spread",
            build(Shape::BlockNest {
                funcs: 38,
                locals: 99,
                depth: 50,
            }),
        ),
        // compile work just under the optimizing tier's threshold, in one function
        (
            "optimizing-blocks",
            build(Shape::BlockNest {
                funcs: 1,
                locals: 95,
                depth: 50,
            }),
        ),
        (
            "optimizing-loops",
            build(Shape::LoopNest {
                funcs: 1,
                locals: 95,
                depth: 50,
            }),
        ),
        // the code section at its limit: many functions of straight-line code (optimizing tier)
        (
            "code-functions",
            build(Shape::HugeBody {
                funcs: 998,
                bytes: 1036,
            }),
        ),
        // ... and with the work at its limit too (linear tier)
        (
            "code-and-work",
            build_all(&[
                Shape::HugeBody {
                    funcs: 997,
                    bytes: 1015,
                },
                Shape::BlockNest {
                    funcs: 1,
                    locals: 960,
                    depth: 199,
                },
            ]),
        ),
        (
            "code-bodies",
            build(Shape::HugeBody {
                funcs: 8,
                bytes: 127 << 10,
            }),
        ),
        // the highest operand stack, in both tiers
        (
            "stack-optimizing",
            build(Shape::StackPressure {
                funcs: 9,
                values: 999,
            }),
        ),
        (
            "stack-linear",
            build(Shape::StackPressure {
                funcs: 250,
                values: 999,
            }),
        ),
        ("br-table", build(Shape::BrTable { targets: 65_000 })),
        ("deep", build(Shape::DeepNesting { depth: 255 })),
        ("locals", build(Shape::ManyLocals { locals: 996 })),
        // state at the memory cap
        (
            "table-at-cap",
            build(Shape::Table {
                elements: table_elements,
                filled: 1 << 20,
            }),
        ),
        (
            "memory-at-cap",
            build_all(&[
                Shape::Memory {
                    pages: b.memory_bytes / 65536,
                },
                Shape::Data {
                    bytes: (crate::budget::MAX_ARCHIVE - (64 << 10)) as u32,
                },
                Shape::Globals { count: 1000 },
            ]),
        ),
        // a name section filling the rest of the archive cap
        (
            "names",
            build(Shape::Names {
                funcs: 998,
                locals: 208,
            }),
        ),
        // running: the most wall time per unit of fuel (calls that zero 999 locals each, and
        // cache-missing loads over 64 MiB)
        ("fat-calls", build(Shape::FatCalls { locals: 998 })),
        (
            "scatter",
            build(Shape::Scatter {
                pages: b.memory_bytes / 65536,
            }),
        ),
    ]
}
