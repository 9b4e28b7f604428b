//! Seeded test data shared by the snapshots crate's tests and bench and the root crate's
//! bootstrap bench (included there with `#[path]`): a splitmix64 generator and config-like
//! records, the same bytes everywhere for a given seed.

#![allow(dead_code)]

/// splitmix64: a tiny seeded generator, so tests need no RNG crate and replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The services records are about.
pub const SERVICES: [&str; 6] = [
    "billing",
    "auth",
    "search",
    "ingest",
    "gateway",
    "scheduler",
];

/// Appends one config-like record (a key path and a small JSON value, 80–300 bytes) to `out`.
pub fn config_record(rng: &mut Rng, i: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    const KEYS: [&str; 5] = [
        "timeout_ms",
        "replicas",
        "endpoint",
        "feature_flags",
        "limits",
    ];
    let svc = SERVICES[rng.below(6) as usize];
    let key = KEYS[rng.below(5) as usize];
    let _ = write!(
        out,
        "/services/{svc}/{i}/{key} {{\"value\":{},\"owner\":\"team-{svc}\",\"region\":\"eu-west-{}\",\"updated\":{},\"enabled\":{}",
        rng.below(100_000),
        rng.below(3),
        1_700_000_000 + rng.below(10_000_000),
        rng.below(2) == 1
    );
    for _ in 0..rng.below(4) {
        let _ = write!(out, ",\"tag{}\":\"{:x}\"", rng.below(100), rng.next_u64());
    }
    out.push(b'}');
}
