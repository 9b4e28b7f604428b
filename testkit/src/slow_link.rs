//! A slow link to one `tessera node` process on one machine: `tc` on the loopback
//! interface puts the UDP (QUIC) packets to and from the node's peer port through a netem
//! queue that delays them and limits their rate. HTTP keeps its speed. Needs root (or
//! CAP_NET_ADMIN) and the `tc` command: [`available`] says why not when either is missing.
//!
//! Layout: an `htb` root qdisc whose default class is unlimited (other loopback traffic is
//! untouched) and a second class limited to the link's rate; one u32 filter per direction
//! steers the node's packets into it. Under that class a netem qdisc adds a fixed delay
//! where the kernel has netem; where it has not (this project's CI machines: only `htb`,
//! `tbf` and `pfifo` exist), the delay is the queue's alone: packets wait for the rate,
//! so a busy link is a slow one. [`SlowLink::delayed`] says which. Only one slow link
//! exists at a time on a machine (it owns `lo`'s root qdisc); dropping the [`SlowLink`]
//! restores `lo`'s default.

use std::process::Command;
use std::time::Duration;

/// A slowed node; the loopback interface is restored on drop.
#[derive(Debug)]
pub struct SlowLink {
    active: bool,
    delayed: bool,
}

fn tc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| format!("tc {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "tc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Whether this machine lets a test slow a link: `Err` says why not.
pub fn available() -> Result<(), String> {
    let out = Command::new("tc")
        .args(["qdisc", "show", "dev", "lo"])
        .output()
        .map_err(|e| format!("no tc command ({e}); install it: apt-get install -y iproute2"))?;
    if !out.status.success() {
        return Err(format!(
            "tc cannot be used here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // Changing a qdisc needs CAP_NET_ADMIN and the kernel's htb: try both, harmlessly.
    match tc(&[
        "qdisc", "replace", "dev", "lo", "root", "handle", "1:", "htb",
    ]) {
        Ok(()) => tc(&["qdisc", "del", "dev", "lo", "root"]),
        Err(e) => Err(format!(
            "tc cannot change lo's queue (root or CAP_NET_ADMIN needed): {e}"
        )),
    }
}

impl SlowLink {
    /// Limits every UDP packet to or from `port` on `lo` to `kbit` kilobits per second
    /// and, where the kernel has netem, delays them by `delay`.
    pub fn slow_udp_port(port: u16, delay: Duration, kbit: u32) -> Result<SlowLink, String> {
        let mut link = SlowLink {
            active: true,
            delayed: false,
        };
        tc(&[
            "qdisc", "replace", "dev", "lo", "root", "handle", "1:", "htb", "default", "10", "r2q",
            "100000",
        ])?;
        tc(&[
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate",
            "100gbit",
        ])?;
        let rate = format!("{kbit}kbit");
        tc(&[
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", &rate,
            "ceil", &rate,
        ])?;
        let delay_ms = format!("{}ms", delay.as_millis().max(1));
        link.delayed = tc(&[
            "qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "netem", "delay",
            &delay_ms, "limit", "100000",
        ])
        .is_ok();
        if !link.delayed {
            tc(&[
                "qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "pfifo", "limit",
                "100000",
            ])?;
        }
        let port = port.to_string();
        for direction in ["sport", "dport"] {
            tc(&[
                "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "protocol", "17", "0xff", "match", "ip", direction, &port, "0xffff",
                "flowid", "1:20",
            ])?;
        }
        Ok(link)
    }

    /// Whether packets are delayed as well as rate-limited (the kernel has netem).
    pub fn delayed(&self) -> bool {
        self.delayed
    }

    /// Restores `lo`'s default queue: the link is fast again.
    pub fn heal(mut self) -> Result<(), String> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), String> {
        if !std::mem::take(&mut self.active) {
            return Ok(());
        }
        tc(&["qdisc", "del", "dev", "lo", "root"])
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("slow link: could not restore lo's queue: {e}");
        }
    }
}
