//! The sandbox and the inference family: variant ordering, every failure as a zero score with
//! its reason, determinism across runs and runtimes, and tool calls in the ledger.

use tally_exec::builder::{build, Variant};
use tally_exec::inference::Inference;
use tally_exec::runtime::{Failure, Limits, WasmRuntime};
use tally_exec::Family;
use wasm_encoder::{
    BlockType, CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    ImportSection, Instruction as I, MemorySection, MemoryType, Module, StartSection, TypeSection,
    ValType,
};

fn family(rt: &WasmRuntime) -> Inference {
    Inference::new(Inference::default_mlp(7), rt, Limits::default()).unwrap()
}

fn score_variant(rt: &WasmRuntime, fam: &Inference, v: Variant) -> (u32, u64) {
    let m = rt.load(&build(fam.mlp(), v), fam.imports()).unwrap();
    let tasks = fam.tasks(&[3; 32], 4);
    let mut total = 0u64;
    let mut fuel = 0;
    for t in &tasks {
        let r = rt.run(&m, &t.input, fam.limits(), "task-eval=1;deployment=d");
        fuel += r.fuel;
        total += fam.score(t, &fam.reference(t), &r).score.units() as u64;
    }
    ((total / tasks.len() as u64) as u32, fuel)
}

#[test]
fn variants_are_ordered() {
    let rt = WasmRuntime::new().unwrap();
    let fam = family(&rt);
    let s = |v| score_variant(&rt, &fam, v).0;
    let (faithful, quantized, noisy, lazy, slow) = (
        s(Variant::Faithful),
        s(Variant::Quantized),
        s(Variant::Noisy),
        s(Variant::Lazy),
        s(Variant::Slow),
    );
    eprintln!("faithful {faithful} quantized {quantized} noisy {noisy} lazy {lazy} slow {slow}");
    assert_eq!(
        faithful, 1_000_000_000,
        "faithful is exact and as cheap as the reference"
    );
    assert!(
        quantized > noisy && quantized > lazy,
        "quantized {quantized} noisy {noisy}"
    );
    assert!(faithful > noisy);
    assert_eq!(lazy, 0);
    assert!(slow < faithful && slow > 0, "slow {slow}");
}

#[test]
fn deterministic_across_runs_and_runtimes() {
    let a = WasmRuntime::new().unwrap();
    let b = WasmRuntime::new().unwrap();
    let fa = family(&a);
    let fb = family(&b);
    assert_eq!(fa.reference_fuel(), fb.reference_fuel());
    for v in [Variant::Faithful, Variant::Quantized, Variant::Slow] {
        let x = score_variant(&a, &fa, v);
        assert_eq!(x, score_variant(&a, &fa, v));
        assert_eq!(x, score_variant(&b, &fb, v));
    }
}

/// A module with the ABI whose `run` body and start function are given.
fn module(
    run_body: &[I],
    start_body: Option<&[I]>,
    import: Option<(&str, &str)>,
    mem_max: Option<u64>,
) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I64]);
    types.ty().function([], []);
    types
        .ty()
        .function([ValType::I32, ValType::I32, ValType::I32], [ValType::I32]);
    m.section(&types);
    let mut nimports = 0;
    if let Some((md, name)) = import {
        let mut imps = ImportSection::new();
        imps.import(md, name, EntityType::Function(3));
        m.section(&imps);
        nimports = 1;
    }
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    funcs.function(1);
    funcs.function(2);
    m.section(&funcs);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: 1,
        maximum: mem_max,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    let mut ex = ExportSection::new();
    ex.export("memory", ExportKind::Memory, 0);
    ex.export("alloc", ExportKind::Func, nimports);
    ex.export("run", ExportKind::Func, nimports + 1);
    m.section(&ex);
    if start_body.is_some() {
        m.section(&StartSection {
            function_index: nimports + 2,
        });
    }
    let mut code = CodeSection::new();
    let mut alloc = Function::new([]);
    alloc.instruction(&I::I32Const(1024)).instruction(&I::End);
    code.function(&alloc);
    let mut run = Function::new([(1, ValType::I32)]);
    for i in run_body {
        run.instruction(i);
    }
    run.instruction(&I::End);
    code.function(&run);
    let mut start = Function::new([]);
    for i in start_body.unwrap_or(&[]) {
        start.instruction(i);
    }
    start.instruction(&I::End);
    code.function(&start);
    m.section(&code);
    m.finish()
}

const LOOP: [I; 4] = [I::Loop(BlockType::Empty), I::Br(0), I::End, I::Unreachable];

fn run(bytes: &[u8], offered: &[&str]) -> tally_exec::runtime::RunResult {
    let rt = WasmRuntime::new().unwrap();
    let limits = Limits {
        fuel: 2_000_000,
        ..Limits::default()
    };
    let m = rt.load(bytes, offered).unwrap();
    rt.run(&m, b"abcd", &limits, "task-eval=9;deployment=dep-1")
}

#[test]
fn endless_loops_end_by_fuel() {
    let r = run(&module(&LOOP, None, None, None), &[]);
    assert_eq!(r.output, Err(Failure::OutOfFuel));
    assert!(r.fuel >= 1_999_000, "{}", r.fuel);
    // in the start function: metered like the rest
    let ok = [I::I64Const(0)];
    let r = run(&module(&ok, Some(&LOOP[..3]), None, None), &[]);
    assert_eq!(r.output, Err(Failure::OutOfFuel));
}

#[test]
fn memory_bomb_stack_overflow_and_out_of_bounds() {
    // grow by 1 page forever: hits the 64 MiB limit
    let bomb = [
        I::Loop(BlockType::Empty),
        I::I32Const(1),
        I::MemoryGrow(0),
        I::Drop,
        I::Br(0),
        I::End,
        I::I64Const(0),
    ];
    let r = run(&module(&bomb, None, None, None), &[]);
    assert_eq!(r.output, Err(Failure::MemoryLimit), "{:?}", r.output);
    // a read far out of bounds
    let oob = [
        I::I32Const(0x7fff_fff0),
        I::I64Load(wasm_encoder::MemArg {
            offset: 0,
            align: 3,
            memory_index: 0,
        }),
    ];
    assert_eq!(
        run(&module(&oob, None, None, None), &[]).output,
        Err(Failure::OutOfBounds)
    );
    // output pointer past memory
    let bad = [I::I64Const((0x7000_0000i64 << 32) | 16)];
    assert!(matches!(
        run(&module(&bad, None, None, None), &[]).output,
        Err(Failure::MalformedOutput(_))
    ));
    // unbounded recursion in run (function 1 calls itself)
    let rec = [I::LocalGet(0), I::LocalGet(1), I::Call(1)];
    assert_eq!(
        run(&module(&rec, None, None, None), &[]).output,
        Err(Failure::StackOverflow)
    );
    // a trap
    assert!(matches!(
        run(&module(&[I::Unreachable], None, None, None), &[]).output,
        Err(Failure::Trap(_))
    ));
}

#[test]
fn imports_are_restricted_and_tool_calls_are_ledgered() {
    let rt = WasmRuntime::new().unwrap();
    let ok = [I::I64Const(0)];
    let e = rt
        .load(
            &module(
                &ok,
                None,
                Some(("wasi_snapshot_preview1", "fd_write")),
                None,
            ),
            &["tool"],
        )
        .unwrap_err();
    assert!(
        matches!(&e, Failure::Load(m) if m.contains("wasi_snapshot_preview1.fd_write")),
        "{e}"
    );
    let e = rt
        .load(
            &module(&ok, None, Some(("tally", "network")), None),
            &["tool"],
        )
        .unwrap_err();
    assert!(
        matches!(&e, Failure::Load(m) if m.contains("not offered")),
        "{e}"
    );
    // a family that offers no tools refuses even tally.tool
    assert!(rt
        .load(&module(&ok, None, Some(("tally", "tool")), None), &[])
        .is_err());
    // tool calls go to the ledger under the job id
    let call = [
        I::I32Const(7),
        I::LocalGet(0),
        I::LocalGet(1),
        I::Call(0),
        I::Drop,
        I::I64Const(0),
    ];
    let r = run(
        &module(&call, None, Some(("tally", "tool")), None),
        &["tool"],
    );
    assert_eq!(r.output, Ok(vec![]));
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].job_id, "task-eval=9;deployment=dep-1");
    assert_eq!(
        (r.tool_calls[0].kind, r.tool_calls[0].payload.as_slice()),
        (7, &b"abcd"[..])
    );
    // missing exports and junk bytes
    assert!(matches!(
        rt.load(b"\\0asm junk", &[]),
        Err(Failure::Load(_))
    ));
}

#[test]
fn failures_score_zero_with_their_reason() {
    let rt = WasmRuntime::new().unwrap();
    let fam = family(&rt);
    let t = &fam.tasks(&[1; 32], 1)[0];
    let m = rt.load(&module(&LOOP, None, None, None), &[]).unwrap();
    let r = rt.run(
        &m,
        &t.input,
        &Limits {
            fuel: 100_000,
            ..Limits::default()
        },
        "x",
    );
    let s = fam.score(t, &fam.reference(t), &r);
    assert_eq!(s.score.units(), 0);
    assert_eq!(s.error, Some(Failure::OutOfFuel));
}
