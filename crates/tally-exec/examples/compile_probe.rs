//! Writes the hostile modules of [`tally_exec::adversarial`] to a directory, or compiles one
//! file under an engine configuration and prints the wall time and peak RSS.
//!
//! `compile_probe write DIR` | `compile_probe compile FILE [none|speed] [single|backtracking]`

use std::time::Instant;
use tally_exec::adversarial::{build, loop_nest_of_size, Shape};
use wasmtime::{Config, Engine, Module, OptLevel, RegallocAlgorithm};

fn hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("write") => {
            let dir = std::path::PathBuf::from(&args[2]);
            std::fs::create_dir_all(&dir).unwrap();
            let kb = 1024usize;
            let mut mods: Vec<(String, Vec<u8>)> = tally_exec::adversarial::worst_within()
                .into_iter()
                .map(|(n, b)| (format!("worst-{n}"), b))
                .collect();
            mods.extend([
                (
                    "nest50k_l100_d10".into(),
                    loop_nest_of_size(50 * kb, 100, 10),
                ),
                (
                    "nest50k_l500_d20".into(),
                    loop_nest_of_size(50 * kb, 500, 20),
                ),
                (
                    "nest50k_l1000_d50".into(),
                    loop_nest_of_size(50 * kb, 1000, 50),
                ),
                (
                    "nest50k_l2000_d5".into(),
                    loop_nest_of_size(50 * kb, 2000, 5),
                ),
                (
                    "nest212k_l500_d40".into(),
                    loop_nest_of_size(212 * kb, 500, 40),
                ),
                (
                    "deep10k".into(),
                    build(Shape::DeepNesting { depth: 10_000 }),
                ),
                (
                    "deep1m".into(),
                    build(Shape::DeepNesting { depth: 1_000_000 }),
                ),
                (
                    "body1m".into(),
                    build(Shape::HugeBody {
                        funcs: 1,
                        bytes: 1 << 20,
                    }),
                ),
                (
                    "body7m".into(),
                    build(Shape::HugeBody {
                        funcs: 1,
                        bytes: 7 << 20,
                    }),
                ),
                (
                    "funcs100k".into(),
                    build(Shape::ManyFunctions { count: 100_000 }),
                ),
                (
                    "funcs500k".into(),
                    build(Shape::ManyFunctions { count: 500_000 }),
                ),
                (
                    "table40m".into(),
                    build(Shape::Table {
                        elements: 40_000_000,
                        filled: 0,
                    }),
                ),
                (
                    "table1m_filled".into(),
                    build(Shape::Table {
                        elements: 1_000_000,
                        filled: 1_000_000,
                    }),
                ),
                ("mem60k".into(), build(Shape::Memory { pages: 60_000 })),
                (
                    "locals50k".into(),
                    build(Shape::ManyLocals { locals: 50_000 }),
                ),
                (
                    "brtable1m".into(),
                    build(Shape::BrTable { targets: 1_000_000 }),
                ),
                (
                    "globals1m".into(),
                    build(Shape::Globals { count: 1_000_000 }),
                ),
            ]);
            for extra in args.iter().skip(3) {
                // nest:<bytes>:<locals>:<depth> | block:<funcs>:<locals>:<depth> | stack:<funcs>:<values> | funcs:<n>
                let kind = extra.split(':').next().unwrap();
                let p: Vec<u32> = extra
                    .split(':')
                    .skip(1)
                    .map(|x| x.parse().unwrap())
                    .collect();
                let b = match kind {
                    "nest" => loop_nest_of_size(p[0] as usize, p[1], p[2]),
                    "block" => build(Shape::BlockNest {
                        funcs: p[0],
                        locals: p[1],
                        depth: p[2],
                    }),
                    "loop" => build(Shape::LoopNest {
                        funcs: p[0],
                        locals: p[1],
                        depth: p[2],
                    }),
                    "stack" => build(Shape::StackPressure {
                        funcs: p[0],
                        values: p[1],
                    }),
                    "funcs" => build(Shape::ManyFunctions { count: p[0] }),
                    "body" => build(Shape::HugeBody {
                        funcs: p[0],
                        bytes: p[1],
                    }),
                    "deep" => build(Shape::DeepNesting { depth: p[0] }),
                    "brtable" => build(Shape::BrTable { targets: p[0] }),
                    "locals" => build(Shape::ManyLocals { locals: p[0] }),
                    _ => panic!("unknown kind {kind}"),
                };
                mods.push((extra.replace(':', "_"), b));
            }
            for (n, b) in mods {
                println!("{n}: {} bytes", b.len());
                std::fs::write(dir.join(format!("{n}.wasm")), b).unwrap();
            }
        }
        Some("compile") => {
            let bytes = std::fs::read(&args[2]).unwrap();
            let mut c = Config::new();
            c.consume_fuel(true)
                .epoch_interruption(true)
                .cranelift_nan_canonicalization(true)
                .wasm_relaxed_simd(false)
                .max_wasm_stack(512 * 1024);
            if args.get(3).map(String::as_str) == Some("none") {
                c.cranelift_opt_level(OptLevel::None);
            }
            if args.get(4).map(String::as_str) == Some("single") {
                c.cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
            }
            let e = Engine::new(&c).unwrap();
            let t = Instant::now();
            let r = Module::new(&e, &bytes);
            println!(
                "{} bytes: {} in {:.3} s, peak RSS {} MiB",
                bytes.len(),
                if r.is_ok() {
                    "ok".to_string()
                } else {
                    format!("{:?}", r.err().map(|e| e.to_string()))
                },
                t.elapsed().as_secs_f64(),
                hwm_kib() / 1024
            );
        }
        Some("load") => {
            // the budget check and the runtime's load, as a validator does it
            let bytes = std::fs::read(&args[2]).unwrap();
            let t = Instant::now();
            let checked = tally_exec::budget::check(&bytes, &tally_exec::budget::Budget::default());
            let check_s = t.elapsed().as_secs_f64();
            let rt = tally_exec::WasmRuntime::new().unwrap();
            let t = Instant::now();
            let r = rt.load(&bytes, &["tool"]);
            println!(
                "{} bytes: check {:.3} s {:?}; load {} in {:.3} s, peak RSS {} MiB",
                bytes.len(),
                check_s,
                checked.as_ref().map(|c| (
                    c.tier,
                    c.functions,
                    c.work,
                    c.max_locals,
                    c.max_nesting,
                    c.max_stack
                )),
                match &r {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.to_string(),
                },
                t.elapsed().as_secs_f64(),
                hwm_kib() / 1024
            );
        }
        Some("overhead") => {
            // the parts of `tally bench exec`'s overhead row: hash, cached load, run
            use tally_exec::Family;
            let rt = tally_exec::WasmRuntime::new().unwrap();
            let fam = tally_exec::inference::Inference::new(
                tally_exec::inference::Inference::default_mlp(7),
                &rt,
                tally_exec::Limits::default(),
            )
            .unwrap();
            let bytes =
                tally_exec::builder::build(fam.mlp(), tally_exec::builder::Variant::Faithful);
            let m = rt.load(&bytes, fam.imports()).unwrap();
            let task = fam.tasks(&[1; 32], 1).remove(0);
            let n = 2000;
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(tally_core::sha256(&bytes));
            }
            let hash = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(rt.load(&bytes, fam.imports()).is_ok());
            }
            let load = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(rt.run(&m, &task.input, fam.limits(), "j"));
            }
            let run = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("sha256 {hash:.1} us, cached load {load:.1} us, run {run:.1} us");
        }
        Some("mlp") => {
            // runtime of the faithful MLP 256-256-64 repeated 200 times under a configuration
            use tally_exec::builder::{build_repeated, Variant};
            let mlp = tally_exec::inference::Mlp::from_seed(11, &[256, 256, 64]);
            let bytes = build_repeated(&mlp, Variant::Faithful, 200);
            let mut c = Config::new();
            c.consume_fuel(true)
                .cranelift_nan_canonicalization(true)
                .wasm_relaxed_simd(false);
            if args.get(2).map(String::as_str) == Some("none") {
                c.cranelift_opt_level(OptLevel::None);
            }
            if args.get(3).map(String::as_str) == Some("single") {
                c.cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
            }
            let e = Engine::new(&c).unwrap();
            let m = Module::new(&e, &bytes).unwrap();
            let mut store = wasmtime::Store::new(&e, ());
            store.set_fuel(u64::MAX / 2).unwrap();
            let i = wasmtime::Instance::new(&mut store, &m, &[]).unwrap();
            let alloc = i.get_typed_func::<i32, i32>(&mut store, "alloc").unwrap();
            let run = i
                .get_typed_func::<(i32, i32), i64>(&mut store, "run")
                .unwrap();
            let p = alloc.call(&mut store, 1024).unwrap();
            let t = Instant::now();
            for _ in 0..5 {
                run.call(&mut store, (p, 1024)).unwrap();
            }
            println!("1000 forward passes in {:.3} s", t.elapsed().as_secs_f64());
        }
        _ => eprintln!(
            "usage: compile_probe write DIR | compile FILE [none|speed] [single|backtracking]"
        ),
    }
}
