//! Helpers shared by the integration tests (each test file is its own crate and uses
//! the part it needs).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// Every wait in the tests is bounded: a hang fails with the step's name.
pub async fn bounded<F: Future>(what: &str, secs: u64, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// Deterministic filler bytes (xorshift): incompressible, so a snapshot is as large on
/// the wire as in memory.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
