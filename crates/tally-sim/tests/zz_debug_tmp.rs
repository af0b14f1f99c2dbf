use tally_sim::{Faults, HosterStrategy, SimConfig, Strategy, World};
#[test]
fn dbg_seed() {
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let mut c = SimConfig::new(seed);
    c.byzantine = std::env::var("BYZ").unwrap().split(',').map(|s| s.parse().unwrap()).collect::<Vec<Strategy>>();
    c.faults = Faults::parse(&std::env::var("FAULTS").unwrap()).unwrap();
    let h: usize = std::env::var("HOSTERS").ok().and_then(|x| x.parse().ok()).unwrap_or(0);
    let all = [HosterStrategy::Honest, HosterStrategy::Noisy, HosterStrategy::Lazy, HosterStrategy::Copycat, HosterStrategy::NoReveal, HosterStrategy::Mismatch, HosterStrategy::Late];
    c.hosters = (0..h).map(|i| all[i % 7]).collect();
    let r = World::new(c).unwrap().run();
    for v in &r.violations { eprintln!("V: {v}"); }
    eprintln!("trace {}", hex::encode(r.trace));
}
