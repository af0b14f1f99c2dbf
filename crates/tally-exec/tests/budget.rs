//! The compile budget and the memory cap (issue 9, item 2): hostile modules are refused before
//! compiling with a reason naming the limit, the worst modules within the budget still load,
//! refusals and compiles are cached and bounded, a compile that overruns the deadline is
//! refused without holding the caller, both compile tiers meter identically, tables count
//! toward the memory cap, and one evaluation spends at most its wall limit.

use std::time::{Duration, Instant};
use tally_exec::adversarial::{build, build_all, loop_nest_of_size, worst_within, Shape};
use tally_exec::budget::{check, Budget, Refusal, Tier, MAX_ARCHIVE};
use tally_exec::builder::{build as build_variant, build_repeated, Variant};
use tally_exec::inference::{Inference, Mlp};
use tally_exec::runtime::{Failure, Limits, WasmRuntime, CACHE, REFUSALS};
use tally_exec::Family;
use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction as I,
    MemorySection, MemoryType, Module, RefType, TableSection, TableType, TypeSection, ValType,
};

/// A runtime that waits long for compiles: these tests are about outcomes, not speed.
fn patient(budget: Budget) -> WasmRuntime {
    WasmRuntime::with_budget(budget, Duration::from_secs(300)).unwrap()
}

fn refused(rt: &WasmRuntime, bytes: &[u8]) -> String {
    match rt.load(bytes, &["tool"]) {
        Err(Failure::Budget(m)) => m,
        other => panic!(
            "expected a budget refusal, got {:?}",
            other.map(|_| "a module")
        ),
    }
}

#[test]
fn the_reviews_nested_loop_modules_are_refused_before_compiling() {
    let rt = patient(Budget::default());
    // 50 KB of nested loops over many locals: 12 s and 630 MB to compile before the budget
    let review = loop_nest_of_size(50 << 10, 3000, 1000);
    assert!(review.len() <= 50 << 10);
    let m = refused(&rt, &review);
    assert!(m.contains("locals") && m.contains("limit of 1000"), "{m}");
    // within the locals limit, the same shape is refused for its compile work
    let work = build(Shape::LoopNest {
        funcs: 1,
        locals: 990,
        depth: 250,
    });
    let m = refused(&rt, &work);
    assert!(m.contains("compile work"), "{m}");
    // the 212 KB module that went past 6.5 GB: many such functions
    let big = loop_nest_of_size(212 << 10, 500, 40);
    let m = refused(&rt, &big);
    assert!(m.contains("compile work"), "{m}");
    // refused before compiling
    assert_eq!(rt.stats().compiled, 0);
}

#[test]
fn each_limit_refuses_with_its_reason() {
    let b = Budget::default();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "deep nesting",
            build(Shape::DeepNesting { depth: 300 }),
            "nesting depth 257",
        ),
        (
            "many functions",
            build(Shape::ManyFunctions { count: 1_500 }),
            "functions: 1502",
        ),
        (
            "huge body",
            build(Shape::HugeBody {
                funcs: 1,
                bytes: 200 << 10,
            }),
            "body of",
        ),
        (
            "code section",
            build(Shape::HugeBody {
                funcs: 9,
                bytes: 127 << 10,
            }),
            "code section bytes",
        ),
        (
            "many locals",
            build(Shape::ManyLocals { locals: 4_000 }),
            "locals are over the limit of 1000",
        ),
        (
            "operand stack",
            build(Shape::StackPressure {
                funcs: 1,
                values: 5_000,
            }),
            "operand stack height 1001",
        ),
        (
            "block merges",
            build(Shape::BlockNest {
                funcs: 1,
                locals: 900,
                depth: 250,
            }),
            "compile work",
        ),
        (
            "static table",
            build(Shape::Table {
                elements: 40_000_000,
                filled: 0,
            }),
            "table of 40000000 elements",
        ),
        (
            "initial memory",
            build(Shape::Memory { pages: 60_000 }),
            "memory of 60000 pages",
        ),
        (
            "memory plus table",
            build_all(&[
                Shape::Memory { pages: 768 },
                Shape::Table {
                    elements: 3_000_000,
                    filled: 0,
                },
            ]),
            "memory cap",
        ),
        (
            "globals",
            build(Shape::Globals { count: 5_000 }),
            "globals: 5000",
        ),
        (
            "element entries",
            build(Shape::Table {
                elements: 2_000_000,
                filled: 2_000_000,
            }),
            "element entries",
        ),
        (
            "archive cap",
            build(Shape::Data {
                bytes: MAX_ARCHIVE as u32,
            }),
            "archive cap",
        ),
    ];
    let rt = patient(b);
    for (name, bytes, reason) in cases {
        match check(&bytes, &b) {
            Err(Refusal::OverBudget(m)) => assert!(m.contains(reason), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
        let m = refused(&rt, &bytes);
        assert!(
            m.starts_with("over budget: ") && m.contains(reason),
            "{name}: {m}"
        );
    }
    assert_eq!(rt.stats().compiled, 0, "nothing over budget was compiled");
    // junk is invalid, not over budget, and keeps its old message
    match rt.load(b"\0asm junk", &[]) {
        Err(Failure::Load(m)) => assert!(m.contains("not a valid wasm module"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn the_worst_modules_within_budget_load() {
    let b = Budget::default();
    let rt = patient(b);
    for (name, bytes) in worst_within() {
        assert!(bytes.len() <= MAX_ARCHIVE, "{name}");
        let c = check(&bytes, &b).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = Instant::now();
        rt.load(&bytes, &["tool"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} bytes, {:?}, work {}, compiled in {:.3} s",
            bytes.len(),
            c.tier,
            c.work,
            t.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn honest_modules_pass_with_a_wide_margin_in_the_optimizing_tier() {
    let b = Budget::default();
    let big = Mlp::from_seed(11, &[256, 256, 64]);
    let wide = Mlp::from_seed(12, &[1024, 1024, 10]);
    for (mlp, times) in [
        (Inference::default_mlp(7), 1),
        (big.clone(), 1),
        (big, 21),
        (wide, 1),
    ] {
        for v in [
            Variant::Faithful,
            Variant::Quantized,
            Variant::Noisy,
            Variant::Lazy,
            Variant::Slow,
        ] {
            let bytes = build_repeated(&mlp, v, times);
            let c = check(&bytes, &b).unwrap();
            assert_eq!(c.tier, Tier::Optimizing, "{v:?}");
            // ten times below every limit that bounds compiling
            assert!(c.work * 10 <= b.optimize_work, "{v:?}: work {}", c.work);
            assert!(c.functions * 10 <= b.max_functions);
            assert!(c.code_bytes * 10 <= b.max_code_bytes);
            assert!(c.max_body_bytes * 10 <= b.max_body_bytes);
            assert!(c.max_locals * 10 <= b.max_locals);
            assert!(c.max_nesting * 10 <= b.max_nesting);
            assert!(c.max_stack * 10 <= b.max_stack);
            assert!(c.static_bytes * 2 <= b.memory_bytes, "{}", c.static_bytes);
        }
    }
}

#[test]
fn refusals_and_modules_are_cached_and_bounded() {
    let rt = patient(Budget::default());
    let bad = build(Shape::Table {
        elements: 40_000_000,
        filled: 0,
    });
    for _ in 0..3 {
        refused(&rt, &bad);
    }
    // a module without the ABI's exports is refused for good too
    let mut m = Module::new();
    m.section(&TypeSection::new());
    let no_abi = m.finish();
    for _ in 0..3 {
        assert!(
            matches!(rt.load(&no_abi, &[]), Err(Failure::Load(m)) if m.contains("missing export"))
        );
    }
    let s = rt.stats();
    assert_eq!((s.checked, s.compiled, s.refusals), (2, 0, 2), "{s:?}");
    // a good module compiles once
    let good = build_variant(&Inference::default_mlp(7), Variant::Faithful);
    for _ in 0..3 {
        rt.load(&good, &[]).unwrap();
    }
    let s = rt.stats();
    assert_eq!((s.checked, s.compiled, s.modules), (3, 1, 1), "{s:?}");
    // imports depend on the family: checked on every load, cached module or not
    assert!(rt.load(&good, &[]).is_ok());
    // bounded: more distinct refusals than the cache holds
    for i in 0..REFUSALS + 10 {
        refused(
            &rt,
            &build(Shape::Globals {
                count: 1_001 + i as u32,
            }),
        );
    }
    assert_eq!(rt.stats().refusals, REFUSALS);
    // and more distinct modules than the module cache holds
    for i in 0..CACHE + 3 {
        rt.load(&build(Shape::Globals { count: i as u32 }), &[])
            .unwrap();
    }
    let s = rt.stats();
    assert_eq!(s.modules, CACHE, "{s:?}");
    assert_eq!(s.compiled, 1 + CACHE as u64 + 3);
}

#[test]
fn a_compile_past_the_deadline_is_refused_but_finishes_for_later() {
    // a module that takes well over a millisecond to compile, against a 1 ms deadline
    let slow = build(Shape::LoopNest {
        funcs: 1,
        locals: 990,
        depth: 150,
    });
    assert_eq!(check(&slow, &Budget::default()).unwrap().tier, Tier::Linear);
    let rt = WasmRuntime::with_budget(Budget::default(), Duration::from_millis(1)).unwrap();
    let t = Instant::now();
    match rt.load(&slow, &[]) {
        Err(Failure::Busy(m)) => assert!(m.contains("compile deadline"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the caller did not wait"
    );
    // not cached as refused: the compile thread finishes it and caches the module
    let start = Instant::now();
    loop {
        match rt.load(&slow, &[]) {
            Ok(_) => break,
            Err(Failure::Busy(m)) if m.contains("deadline") => {
                assert!(start.elapsed() < Duration::from_secs(120), "never compiled");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(rt.stats().compiled, 1);
}

#[test]
fn both_tiers_meter_and_compute_identically() {
    let optimizing = patient(Budget::default());
    let linear = patient(Budget {
        optimize_work: 0,
        ..Budget::default()
    });
    let fam = Inference::new(Inference::default_mlp(7), &optimizing, Limits::default()).unwrap();
    let tasks = fam.tasks(&[5; 32], 3);
    for v in [Variant::Faithful, Variant::Quantized, Variant::Slow] {
        let bytes = build_variant(fam.mlp(), v);
        let a = optimizing.load(&bytes, fam.imports()).unwrap();
        let b = linear.load(&bytes, fam.imports()).unwrap();
        assert!(wasmtime::Engine::same(
            a.engine(),
            optimizing.engine(Tier::Optimizing)
        ));
        assert!(wasmtime::Engine::same(
            b.engine(),
            linear.engine(Tier::Linear)
        ));
        for t in &tasks {
            let x = optimizing.run(&a, &t.input, fam.limits(), "j");
            let y = linear.run(&b, &t.input, fam.limits(), "j");
            assert_eq!((&x.output, x.fuel), (&y.output, y.fuel), "{v:?}");
            assert!(x.output.is_ok());
        }
    }
}

/// A module whose `run` grows table 0 (`initial` elements) by `grow` elements, on top of a
/// memory of `pages` pages.
fn table_grower(initial: u64, grow: i32, pages: u64) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I64]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0).function(1);
    m.section(&funcs);
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: initial,
        maximum: None,
        shared: false,
    });
    m.section(&tables);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    let mut ex = ExportSection::new();
    ex.export("memory", ExportKind::Memory, 0);
    ex.export("alloc", ExportKind::Func, 0);
    ex.export("run", ExportKind::Func, 1);
    m.section(&ex);
    let mut code = CodeSection::new();
    let mut alloc = Function::new([]);
    alloc.instruction(&I::I32Const(1024)).instruction(&I::End);
    code.function(&alloc);
    let mut run = Function::new([]);
    run.instruction(&I::RefNull(wasm_encoder::HeapType::FUNC))
        .instruction(&I::I32Const(grow))
        .instruction(&I::TableGrow(0))
        .instruction(&I::Drop)
        // touch the last element, so the growth is real
        .instruction(&I::I32Const(grow.saturating_sub(1).max(0)))
        .instruction(&I::TableGet(0))
        .instruction(&I::Drop)
        .instruction(&I::I64Const(0))
        .instruction(&I::End);
    code.function(&run);
    m.section(&code);
    m.finish()
}

#[test]
fn tables_count_toward_the_memory_cap() {
    let limits = Limits::default();
    // a checker that lets static state through, so the run's own cap is what is tested
    let lax = patient(Budget {
        memory_bytes: u64::MAX,
        ..Budget::default()
    });
    let run = |bytes: &[u8]| {
        let m = lax.load(bytes, &[]).unwrap();
        lax.run(&m, b"", &limits, "j").output
    };
    // a static table of 40M elements: 320 MB past a 64 MiB cap before the fix
    let static_table = build(Shape::Table {
        elements: 40_000_000,
        filled: 0,
    });
    assert_eq!(run(&static_table), Err(Failure::MemoryLimit));
    // growing a table at run time past the cap
    assert_eq!(
        run(&table_grower(0, 10_000_000, 1)),
        Err(Failure::MemoryLimit)
    );
    // memory and table each under the cap, together over it
    assert_eq!(
        run(&table_grower(3_000_000, 1, 768)),
        Err(Failure::MemoryLimit)
    );
    // a table that fits, and the largest static state the budget lets through, run fine
    assert_eq!(run(&table_grower(0, 1_000_000, 1)), Ok(vec![]));
    let at_cap = worst_within()
        .into_iter()
        .filter(|(n, _)| n.ends_with("at-cap"))
        .collect::<Vec<_>>();
    assert_eq!(at_cap.len(), 2);
    for (name, bytes) in at_cap {
        assert_eq!(run(&bytes), Ok(vec![]), "{name}");
    }
    // and the default checker refuses the static table before compiling it
    let rt = patient(Budget::default());
    assert!(refused(&rt, &static_table).contains("memory cap"));
}

/// A module whose `run` loops forever (stopped by the wall clock when fuel is plentiful).
fn endless() -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I64]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0).function(1);
    m.section(&funcs);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: 1,
        maximum: Some(1),
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    let mut ex = ExportSection::new();
    ex.export("memory", ExportKind::Memory, 0);
    ex.export("alloc", ExportKind::Func, 0);
    ex.export("run", ExportKind::Func, 1);
    m.section(&ex);
    let mut code = CodeSection::new();
    let mut alloc = Function::new([]);
    alloc.instruction(&I::I32Const(1024)).instruction(&I::End);
    code.function(&alloc);
    let mut run = Function::new([]);
    run.instruction(&I::Loop(BlockType::Empty))
        .instruction(&I::Br(0))
        .instruction(&I::End)
        .instruction(&I::I64Const(0))
        .instruction(&I::End);
    code.function(&run);
    m.section(&code);
    m.finish()
}

#[test]
fn one_evaluation_spends_at_most_its_wall_limit() {
    let rt = patient(Budget::default());
    let fam = Inference::new(Inference::default_mlp(7), &rt, Limits::default()).unwrap();
    let module = rt.load(&endless(), fam.imports()).unwrap();
    // fuel enough for hours: only the wall clock stops it
    let limits = Limits {
        wall: Duration::from_millis(100),
        fuel: u64::MAX / 4,
        ..Limits::default()
    };
    let tasks = fam.tasks(&[2; 32], 10);
    let t = Instant::now();
    let ev = tally_exec::family::evaluate(&fam, &rt, &module, &tasks, &limits, "d");
    // ten tasks of 100 ms each before the fix; one 100 ms budget for all of them after
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(ev.error, Some(Failure::Timeout));
    assert_eq!(ev.score.units(), 0);
    // an honest submission is unaffected
    let good = rt
        .load(&build_variant(fam.mlp(), Variant::Faithful), fam.imports())
        .unwrap();
    let ev = tally_exec::family::evaluate(&fam, &rt, &good, &tasks, &limits, "d");
    assert_eq!(ev.error, None);
    assert_eq!(ev.score.units(), 1_000_000_000);
}
