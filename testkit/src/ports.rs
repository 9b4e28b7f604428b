//! Free ports for nodes that are started later, by another process.
//!
//! Binding port 0 and closing the socket hands out a port from the kernel's ephemeral
//! range, the range every outgoing connection also draws its local port from. Between
//! the pick and the node's own bind, any client connection on the machine (the test's
//! HTTP clients among them) may take that port, and the node fails with "address in
//! use". So ports are picked *below* the ephemeral range, which `connect` never hands
//! out, and checked by binding both UDP and TCP. Each pick in a process starts from a
//! different place (process id and a counter), so concurrent harnesses rarely probe the
//! same port, and a process never gives the same port twice while it has others to try.

use std::net::{IpAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out; below lie well-known and registered service ports.
const LOWEST: u16 = 10_000;
/// Where Linux's ephemeral range starts by default, used when it cannot be read.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// Candidates tried before giving up.
const ATTEMPTS: u32 = 500;

/// Picks per process, so two picks in one process start at different candidates.
static PICKS: AtomicU32 = AtomicU32::new(0);

/// A port on `ip` that is free for both UDP and TCP now, outside the ephemeral range.
/// When the ephemeral range leaves no room below it, falls back to a kernel-chosen port.
pub fn free_port(ip: IpAddr) -> Result<u16, String> {
    let end = ephemeral_start();
    if end <= LOWEST + 1000 {
        return kernel_chosen(ip);
    }
    let span = u32::from(end - LOWEST);
    let pick = PICKS.fetch_add(1, Ordering::Relaxed);
    // Spread processes apart by pid; within a process, step by a prime so consecutive
    // picks land far apart.
    let start = std::process::id()
        .wrapping_mul(7_919)
        .wrapping_add(pick.wrapping_mul(101));
    for attempt in 0..ATTEMPTS {
        let offset = start.wrapping_add(attempt.wrapping_mul(1_009)) % span;
        let port = LOWEST + offset as u16;
        if UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!(
        "no port free for UDP and TCP on {ip} in {LOWEST}..{end} after {ATTEMPTS} tries"
    ))
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// A port the kernel picks (ephemeral, so open to the race described above).
fn kernel_chosen(ip: IpAddr) -> Result<u16, String> {
    let udp = UdpSocket::bind((ip, 0)).map_err(|e| format!("free UDP port on {ip}: {e}"))?;
    let port = udp.local_addr().map_err(|e| e.to_string())?.port();
    TcpListener::bind((ip, port)).map_err(|e| format!("TCP port {port} on {ip}: {e}"))?;
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn picks_are_bindable_distinct_and_below_the_ephemeral_range() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let end = ephemeral_start();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let port = free_port(ip).expect("a free port");
            if end > LOWEST + 1000 {
                assert!(
                    (LOWEST..end).contains(&port),
                    "{port} not in {LOWEST}..{end}"
                );
            }
            assert!(seen.insert(port), "{port} given twice");
            UdpSocket::bind((ip, port)).expect("UDP bind on the picked port");
            TcpListener::bind((ip, port)).expect("TCP bind on the picked port");
        }
    }
}
