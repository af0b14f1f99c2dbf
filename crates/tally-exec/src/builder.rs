//! The miner builder: emits submissions for the `inference` family with `wasm-encoder`.
//!
//! Variants: `faithful` (the reference computation, operation for operation), `quantized` (int8
//! weights with a per-row scale), `noisy` (faithful, then outputs perturbed by ±30%), `lazy`
//! (returns zeros without computing) and `slow` (faithful after a loop of wasted work). The
//! weights live in a data segment; every address is a constant, so the code is a few loops.

use crate::inference::Mlp;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function,
    FunctionSection, Instruction as I, MemArg, MemorySection, MemoryType, Module, TypeSection,
    ValType,
};

/// A submission variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Variant {
    /// The reference computation.
    Faithful,
    /// int8 weights.
    Quantized,
    /// Perturbed outputs.
    Noisy,
    /// Zeros.
    Lazy,
    /// Faithful plus wasted work.
    Slow,
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "faithful" => Variant::Faithful,
            "quantized" => Variant::Quantized,
            "noisy" => Variant::Noisy,
            "lazy" => Variant::Lazy,
            "slow" => Variant::Slow,
            _ => {
                return Err(format!(
                    "unknown variant {s:?}: use faithful, quantized, noisy, lazy or slow"
                ))
            }
        })
    }
}

const BASE: u32 = 1024;
// locals of `run`: params 0 ptr and 1 len; i32 locals 2 o, 3 i, 4 k, 5 wp, 6 xp, 7 rep;
// f32 locals 8 acc and 9..=12 the four lanes
const PTR: u32 = 0;
const O: u32 = 2;
const IX: u32 = 3;
const K: u32 = 4;
const WP: u32 = 5;
const XP: u32 = 6;
const REP: u32 = 7;
const ACC: u32 = 8;
const LANE: u32 = 9;
const VACC: u32 = 13;

fn mem(offset: u32, align: u32) -> MemArg {
    MemArg {
        offset: offset as u64,
        align,
        memory_index: 0,
    }
}

/// Where one layer's parameters and buffers live.
struct Placed {
    input: u32,
    output: u32,
    w: u32,
    b: u32,
    scale: u32,
    x: Option<u32>, // None: the input pointer argument
    y: u32,
    relu: bool,
}

/// The dot products of one layer in the reference's order: with an input width divisible by
/// four, element `i` goes to lane `i % 4` and `acc = (l0 + l1) + (l2 + l3)`; otherwise one
/// running sum. Then `y[o] = act(acc [* scale[o]] + b[o])`. Walking pointers instead of
/// recomputing addresses keeps the loop short.
fn dense(f: &mut Function, l: &Placed, quantized: bool) {
    let wsize: i32 = if quantized { 1 } else { 4 };
    let unroll: u32 = if l.input.is_multiple_of(4) { 4 } else { 1 };
    f.instruction(&I::I32Const(0)).instruction(&I::LocalSet(O));
    f.instruction(&I::Block(BlockType::Empty))
        .instruction(&I::Loop(BlockType::Empty));
    f.instruction(&I::LocalGet(O))
        .instruction(&I::I32Const(l.output as i32))
        .instruction(&I::I32GeU)
        .instruction(&I::BrIf(1));
    for u in 0..4 {
        f.instruction(&I::F32Const(0.0f32.into()))
            .instruction(&I::LocalSet(LANE + u));
    }
    f.instruction(&I::V128Const(0))
        .instruction(&I::LocalSet(VACC));
    f.instruction(&I::F32Const(0.0f32.into()))
        .instruction(&I::LocalSet(ACC));
    // wp = w + o*in*wsize; xp = x
    f.instruction(&I::LocalGet(O))
        .instruction(&I::I32Const(l.input as i32 * wsize))
        .instruction(&I::I32Mul);
    f.instruction(&I::I32Const(l.w as i32))
        .instruction(&I::I32Add)
        .instruction(&I::LocalSet(WP));
    match l.x {
        None => f.instruction(&I::LocalGet(PTR)),
        Some(x) => f.instruction(&I::I32Const(x as i32)),
    };
    f.instruction(&I::LocalSet(XP));
    f.instruction(&I::I32Const(0)).instruction(&I::LocalSet(IX));
    f.instruction(&I::Block(BlockType::Empty))
        .instruction(&I::Loop(BlockType::Empty));
    f.instruction(&I::LocalGet(IX))
        .instruction(&I::I32Const(l.input as i32))
        .instruction(&I::I32GeU)
        .instruction(&I::BrIf(1));
    let simd = unroll == 4 && !quantized;
    if simd {
        // the four lanes in one f32x4: lane u += w[i+u] * x[i+u], the same order as scalar lanes
        f.instruction(&I::LocalGet(VACC));
        f.instruction(&I::LocalGet(WP))
            .instruction(&I::V128Load(mem(0, 2)));
        f.instruction(&I::LocalGet(XP))
            .instruction(&I::V128Load(mem(0, 2)));
        f.instruction(&I::F32x4Mul)
            .instruction(&I::F32x4Add)
            .instruction(&I::LocalSet(VACC));
    }
    for u in 0..if simd { 0 } else { unroll } {
        // with four lanes, element i+u goes to lane u; otherwise everything to acc
        let target = if unroll == 4 { LANE + u } else { ACC };
        f.instruction(&I::LocalGet(target));
        f.instruction(&I::LocalGet(WP));
        if quantized {
            f.instruction(&I::I32Load8S(mem(u, 0)))
                .instruction(&I::F32ConvertI32S);
        } else {
            f.instruction(&I::F32Load(mem(4 * u, 2)));
        }
        f.instruction(&I::LocalGet(XP))
            .instruction(&I::F32Load(mem(4 * u, 2)));
        f.instruction(&I::F32Mul)
            .instruction(&I::F32Add)
            .instruction(&I::LocalSet(target));
    }
    f.instruction(&I::LocalGet(WP))
        .instruction(&I::I32Const(wsize * unroll as i32))
        .instruction(&I::I32Add)
        .instruction(&I::LocalSet(WP));
    f.instruction(&I::LocalGet(XP))
        .instruction(&I::I32Const(4 * unroll as i32))
        .instruction(&I::I32Add)
        .instruction(&I::LocalSet(XP));
    f.instruction(&I::LocalGet(IX))
        .instruction(&I::I32Const(unroll as i32))
        .instruction(&I::I32Add)
        .instruction(&I::LocalSet(IX));
    f.instruction(&I::Br(0))
        .instruction(&I::End)
        .instruction(&I::End);
    if simd {
        for u in 0..4u8 {
            f.instruction(&I::LocalGet(VACC))
                .instruction(&I::F32x4ExtractLane(u))
                .instruction(&I::LocalSet(LANE + u as u32));
        }
    }
    if unroll == 4 {
        // acc = (l0 + l1) + (l2 + l3)
        f.instruction(&I::LocalGet(LANE))
            .instruction(&I::LocalGet(LANE + 1))
            .instruction(&I::F32Add);
        f.instruction(&I::LocalGet(LANE + 2))
            .instruction(&I::LocalGet(LANE + 3))
            .instruction(&I::F32Add);
        f.instruction(&I::F32Add).instruction(&I::LocalSet(ACC));
    }
    // y[o] = act(acc [* scale[o]] + b[o])
    f.instruction(&I::LocalGet(O))
        .instruction(&I::I32Const(4))
        .instruction(&I::I32Mul); // store address
    f.instruction(&I::LocalGet(ACC));
    if quantized {
        f.instruction(&I::LocalGet(O))
            .instruction(&I::I32Const(4))
            .instruction(&I::I32Mul)
            .instruction(&I::F32Load(mem(l.scale, 2)));
        f.instruction(&I::F32Mul);
    }
    f.instruction(&I::LocalGet(O))
        .instruction(&I::I32Const(4))
        .instruction(&I::I32Mul)
        .instruction(&I::F32Load(mem(l.b, 2)));
    f.instruction(&I::F32Add);
    if l.relu {
        f.instruction(&I::F32Const(0.0f32.into()))
            .instruction(&I::F32Max);
    }
    f.instruction(&I::F32Store(mem(l.y, 2)));
    f.instruction(&I::LocalGet(O))
        .instruction(&I::I32Const(1))
        .instruction(&I::I32Add)
        .instruction(&I::LocalSet(O));
    f.instruction(&I::Br(0))
        .instruction(&I::End)
        .instruction(&I::End);
}

/// Builds the submission of `variant` for `mlp`.
pub fn build(mlp: &Mlp, variant: Variant) -> Vec<u8> {
    build_repeated(mlp, variant, 1)
}

/// Like [`build`], computing the forward pass `times` times per call (for benchmarks that
/// separate compute from instantiation).
pub fn build_repeated(mlp: &Mlp, variant: Variant, times: u32) -> Vec<u8> {
    let quantized = variant == Variant::Quantized;
    // lay out parameters
    let mut data: Vec<u8> = Vec::new();
    let mut placed = Vec::new();
    let n = mlp.layers.len();
    for (li, layer) in mlp.layers.iter().enumerate() {
        let w = BASE + data.len() as u32;
        let mut scale_vals = Vec::new();
        if quantized {
            for o in 0..layer.output {
                let row = &layer.w[o * layer.input..(o + 1) * layer.input];
                let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                let s = if s == 0.0 { 1.0 } else { s };
                scale_vals.push(s);
                data.extend(
                    row.iter()
                        .map(|v| ((v / s).round().clamp(-127.0, 127.0) as i8) as u8),
                );
            }
            while !data.len().is_multiple_of(4) {
                data.push(0);
            }
        } else {
            data.extend(layer.w.iter().flat_map(|v| v.to_le_bytes()));
        }
        let b = BASE + data.len() as u32;
        data.extend(layer.b.iter().flat_map(|v| v.to_le_bytes()));
        let scale = BASE + data.len() as u32;
        data.extend(scale_vals.iter().flat_map(|v| v.to_le_bytes()));
        placed.push((
            w,
            b,
            scale,
            li + 1 < n,
            layer.input as u32,
            layer.output as u32,
        ));
    }
    // buffers after the parameters: input, then one per layer output
    let mut at = BASE + data.len() as u32;
    let in_cap = mlp.input() as u32 * 4;
    let in_addr = at;
    at += in_cap;
    let mut layers = Vec::new();
    let mut x = None;
    for (w, b, scale, relu, input, output) in placed {
        let y = at;
        at += output * 4;
        layers.push(Placed {
            input,
            output,
            w,
            b,
            scale,
            x,
            y,
            relu,
        });
        x = Some(y);
    }
    let out_addr = layers.last().map(|l| l.y).unwrap_or(in_addr);
    let out_len = mlp.output() as u32 * 4;
    let pages = (at as u64).div_ceil(65536) + 1;

    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I64]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    funcs.function(1);
    m.section(&funcs);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: pages,
        maximum: Some(pages),
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("alloc", ExportKind::Func, 0);
    exports.export("run", ExportKind::Func, 1);
    m.section(&exports);

    let mut code = CodeSection::new();
    // alloc(len): the input buffer, if it fits
    let mut alloc = Function::new([]);
    alloc
        .instruction(&I::LocalGet(0))
        .instruction(&I::I32Const(in_cap as i32))
        .instruction(&I::I32GtU);
    alloc
        .instruction(&I::If(BlockType::Result(ValType::I32)))
        .instruction(&I::I32Const(0));
    alloc
        .instruction(&I::Else)
        .instruction(&I::I32Const(in_addr as i32))
        .instruction(&I::End);
    alloc.instruction(&I::End);
    code.function(&alloc);

    let mut run = Function::new([(6, ValType::I32), (5, ValType::F32), (1, ValType::V128)]);
    if variant == Variant::Slow {
        // about twice the MLP's work, wasted
        let waste = mlp.flops() as i32 * 2;
        run.instruction(&I::I32Const(0))
            .instruction(&I::LocalSet(K));
        run.instruction(&I::Block(BlockType::Empty))
            .instruction(&I::Loop(BlockType::Empty));
        run.instruction(&I::LocalGet(K))
            .instruction(&I::I32Const(waste))
            .instruction(&I::I32GeU)
            .instruction(&I::BrIf(1));
        run.instruction(&I::LocalGet(K))
            .instruction(&I::I32Const(1))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(K));
        run.instruction(&I::Br(0))
            .instruction(&I::End)
            .instruction(&I::End);
    }
    if variant != Variant::Lazy {
        run.instruction(&I::I32Const(0))
            .instruction(&I::LocalSet(REP));
        run.instruction(&I::Block(BlockType::Empty))
            .instruction(&I::Loop(BlockType::Empty));
        run.instruction(&I::LocalGet(REP))
            .instruction(&I::I32Const(times.max(1) as i32))
            .instruction(&I::I32GeU)
            .instruction(&I::BrIf(1));
        for l in &layers {
            dense(&mut run, l, quantized);
        }
        run.instruction(&I::LocalGet(REP))
            .instruction(&I::I32Const(1))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(REP));
        run.instruction(&I::Br(0))
            .instruction(&I::End)
            .instruction(&I::End);
    }
    if variant == Variant::Noisy {
        for o in 0..mlp.output() as u32 {
            let factor: f32 = if o % 2 == 0 { 1.3 } else { 0.7 };
            run.instruction(&I::I32Const(0));
            run.instruction(&I::I32Const(0))
                .instruction(&I::F32Load(mem(out_addr + 4 * o, 2)));
            run.instruction(&I::F32Const(factor.into()))
                .instruction(&I::F32Mul);
            run.instruction(&I::F32Store(mem(out_addr + 4 * o, 2)));
        }
    }
    run.instruction(&I::I64Const(((out_addr as i64) << 32) | out_len as i64));
    run.instruction(&I::End);
    code.function(&run);
    m.section(&code);

    let mut ds = DataSection::new();
    ds.active(0, &ConstExpr::i32_const(BASE as i32), data);
    m.section(&ds);
    m.finish()
}
