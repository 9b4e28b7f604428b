//! Network partitions between `tessera node` processes on one machine, without namespaces:
//! iptables rules on the loopback interface that drop the UDP (QUIC) packets to and from
//! one node's peer port. HTTP (TCP) keeps working, so a test still asks the isolated node
//! what it thinks. Needs root (or CAP_NET_ADMIN) and the `iptables` command: [`available`]
//! says why not when it is missing, and a test skips, saying so.
//!
//! [`Partition::drop_links`] cuts single links, one way or both (a node's QUIC socket
//! sends from the port it listens on, so a link is a pair of ports).
//!
//! Every rule carries a comment naming this process, and is deleted when its [`Partition`]
//! is dropped (a failing test too); [`Partition::heal`] deletes them earlier.

use std::process::Command;

/// Rules isolating one UDP port; removed on drop.
#[derive(Debug)]
pub struct Partition {
    rules: Vec<Vec<String>>,
}

/// Whether this machine lets a test partition nodes: `Err` says why not.
pub fn available() -> Result<(), String> {
    let out = Command::new("iptables")
        .args(["-w", "-L", "INPUT", "-n"])
        .output()
        .map_err(|e| {
            format!("no iptables command ({e}); install it: apt-get install -y iptables")
        })?;
    if !out.status.success() {
        return Err(format!(
            "iptables cannot be used here (root or CAP_NET_ADMIN needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn iptables(op: &str, rule: &[String]) -> Result<(), String> {
    let mut args = vec!["-w".to_string(), op.to_string(), "INPUT".to_string()];
    args.extend(rule.iter().cloned());
    let out = Command::new("iptables")
        .args(&args)
        .output()
        .map_err(|e| format!("iptables {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl Partition {
    /// Drops every UDP packet on `lo` to or from `port` (one node's QUIC port): the node
    /// is cut off from all its peers.
    pub fn isolate_udp_port(port: u16) -> Result<Partition, String> {
        let comment = format!("tessera-test-{}", std::process::id());
        let mut partition = Partition { rules: Vec::new() };
        for direction in ["--dport", "--sport"] {
            let rule: Vec<String> = [
                "-i",
                "lo",
                "-p",
                "udp",
                direction,
                &port.to_string(),
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                "DROP",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            iptables("-I", &rule)?;
            partition.rules.push(rule);
        }
        Ok(partition)
    }

    /// Drops every UDP packet on `lo` from the first port of each pair to the second (one
    /// node's QUIC port to another's): a link cut one way. Give both directions for a
    /// two-way cut; pairs between two groups of nodes split the cluster.
    pub fn drop_links(links: &[(u16, u16)]) -> Result<Partition, String> {
        let comment = format!("tessera-test-{}", std::process::id());
        let mut partition = Partition { rules: Vec::new() };
        for (from, to) in links {
            let rule: Vec<String> = [
                "-i",
                "lo",
                "-p",
                "udp",
                "--sport",
                &from.to_string(),
                "--dport",
                &to.to_string(),
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                "DROP",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            iptables("-I", &rule)?;
            partition.rules.push(rule);
        }
        Ok(partition)
    }

    /// Deletes the rules: the node's packets flow again.
    pub fn heal(mut self) -> Result<(), String> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), String> {
        let mut first_error = None;
        for rule in self.rules.drain(..) {
            if let Err(e) = iptables("-D", &rule) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("partition: could not remove a rule: {e}");
        }
    }
}
