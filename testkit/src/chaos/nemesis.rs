//! The faults: each [`Nemesis`] picks its target (the leader half the time or more, as
//! Jepsen's nemeses do), applies the fault, and later heals it.
//!
//! Nodes are addressed by slot (0..N): a replaced member's successor takes its slot, so
//! the clients bound to a slot keep a node to talk to.

use super::workload::Shared;
use crate::cluster::LocalCluster;
use crate::partition::Partition;
use crate::slow_link::SlowLink;
use rand::rngs::SmallRng;
use rand::Rng;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Nemesis {
    /// SIGKILL one node (the leader half the time), restarted when healed.
    Kill,
    /// SIGSTOP one node (the leader two times in three), SIGCONT when healed.
    Pause,
    /// Cut the network: the leader isolated (half the time), or a random minority split
    /// from the majority.
    Partition,
    /// One node's packets to every other node dropped, theirs to it delivered.
    OneWay,
    /// One node's peer traffic through a rate-limited (and where possible delayed) queue.
    Slow,
    /// SIGKILL every node at once (a power cut), all restarted when healed.
    KillAll,
    /// A follower killed, removed from the group, its disk wiped, and a new node added
    /// in its place through the membership API.
    Replace,
}

impl Nemesis {
    /// Every nemesis, in the order of the report.
    pub const ALL: [Nemesis; 7] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Partition,
        Nemesis::OneWay,
        Nemesis::Slow,
        Nemesis::KillAll,
        Nemesis::Replace,
    ];

    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Partition => "partition",
            Nemesis::OneWay => "one-way",
            Nemesis::Slow => "slow",
            Nemesis::KillAll => "kill-all",
            Nemesis::Replace => "replace",
        }
    }

    /// Parses a comma-separated list (`all` for every one).
    pub fn parse_list(list: &str) -> Result<Vec<Nemesis>, String> {
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                out.extend(Nemesis::ALL);
                continue;
            }
            match Nemesis::ALL.iter().find(|n| n.name() == word) {
                Some(n) => out.push(*n),
                None => {
                    return Err(format!(
                        "unknown nemesis {word:?}: choose among {} or all",
                        Nemesis::ALL.map(Nemesis::name).join(", ")
                    ))
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether it changes `lo` (iptables or tc: root needed).
    pub fn needs_network_control(self) -> bool {
        matches!(self, Nemesis::Partition | Nemesis::OneWay | Nemesis::Slow)
    }

    /// Whether it takes nodes down (two of these at once could stop the whole cluster
    /// for longer than a step).
    fn stops_processes(self) -> bool {
        matches!(self, Nemesis::Kill | Nemesis::KillAll | Nemesis::Replace)
    }

    /// Whether two faults may be applied together.
    pub fn combines_with(self, other: Nemesis) -> bool {
        let alone = |n: Nemesis| matches!(n, Nemesis::KillAll | Nemesis::Replace);
        let both_stop = self.stops_processes() && other.stops_processes();
        self != other && !both_stop && !alone(self) && !alone(other)
    }
}

/// A fault in force, to be healed.
#[derive(Debug)]
pub enum Active {
    /// Node in this slot killed.
    Killed(usize),
    /// Node in this slot paused.
    Paused(usize),
    /// Links cut.
    Cut(Partition),
    /// A link slowed.
    Slowed(SlowLink),
    /// Every node killed.
    AllKilled,
    /// Nothing left to heal (a replacement is done when applied).
    Done,
}

/// The cluster as the nemeses see it: node slots over a [`LocalCluster`].
pub struct Nodes {
    /// The processes.
    pub cluster: LocalCluster,
    /// `slots[s]`: the cluster index of the node in slot `s`.
    pub slots: Vec<usize>,
}

/// How long a step may wait for the cluster (a leader, a member change).
const WAIT: Duration = Duration::from_secs(30);

impl Nodes {
    fn index(&self, slot: usize) -> usize {
        self.slots[slot]
    }

    fn port(&self, slot: usize) -> u16 {
        self.cluster.node(self.index(slot)).listen.port()
    }

    /// The slot of the node every running node names as leader, if they agree now.
    pub async fn leader_slot(&mut self) -> Option<usize> {
        let statuses = self.cluster.statuses(Duration::from_millis(800)).await;
        let leader = statuses
            .iter()
            .flatten()
            .find_map(|s| s.is_leader().then(|| s.id.clone()))?;
        let index = self.cluster.index_of(&leader)?;
        self.slots.iter().position(|&i| i == index)
    }

    fn describe(&self, slot: usize, leader: Option<usize>) -> String {
        let name = &self.cluster.node(self.index(slot)).name;
        if leader == Some(slot) {
            format!("{name} (leader)")
        } else {
            name.clone()
        }
    }

    /// Applies `nemesis`, avoiding the slots in `busy` (taken by another fault of the same
    /// step); returns the fault in force, what was done, and the slots it touched.
    pub async fn apply(
        &mut self,
        nemesis: Nemesis,
        rng: &mut SmallRng,
        busy: &[usize],
        shared: &Arc<Shared>,
    ) -> Result<(Active, String, Vec<usize>), String> {
        let n = self.slots.len();
        let leader = self.leader_slot().await;
        let free: Vec<usize> = (0..n).filter(|s| !busy.contains(s)).collect();
        if free.is_empty() {
            return Err("no node left to fault".into());
        }
        let any = |rng: &mut SmallRng| free[rng.random_range(0..free.len())];
        // The leader with probability `p` (when it is free), else any free node.
        let pick = |rng: &mut SmallRng, p: f64| match leader {
            Some(l) if free.contains(&l) && rng.random_bool(p) => l,
            _ => any(rng),
        };
        match nemesis {
            Nemesis::Kill => {
                let s = pick(rng, 0.5);
                let what = format!("kill {}", self.describe(s, leader));
                self.cluster.kill(self.index(s))?;
                Ok((Active::Killed(s), what, vec![s]))
            }
            Nemesis::Pause => {
                let s = pick(rng, 2.0 / 3.0);
                let what = format!("pause {}", self.describe(s, leader));
                self.cluster.pause(self.index(s))?;
                Ok((Active::Paused(s), what, vec![s]))
            }
            Nemesis::Partition => {
                let minority: Vec<usize> = match leader {
                    Some(l) if free.contains(&l) && rng.random_bool(0.5) => vec![l],
                    _ => {
                        let mut all: Vec<usize> = (0..n).collect();
                        let size = ((n - 1) / 2).max(1);
                        let mut chosen = Vec::new();
                        while chosen.len() < size && !all.is_empty() {
                            chosen.push(all.remove(rng.random_range(0..all.len())));
                        }
                        chosen
                    }
                };
                let mut links = Vec::new();
                for &a in &minority {
                    for b in (0..n).filter(|b| !minority.contains(b)) {
                        links.push((self.port(a), self.port(b)));
                        links.push((self.port(b), self.port(a)));
                    }
                }
                let names: Vec<String> =
                    minority.iter().map(|&s| self.describe(s, leader)).collect();
                let what = format!("partition {{{}}} from the rest", names.join(", "));
                Ok((Active::Cut(Partition::drop_links(&links)?), what, minority))
            }
            Nemesis::OneWay => {
                let s = pick(rng, 0.5);
                let links: Vec<(u16, u16)> = (0..n)
                    .filter(|&b| b != s)
                    .map(|b| (self.port(s), self.port(b)))
                    .collect();
                let what = format!(
                    "drop {}'s packets to the others (one way)",
                    self.describe(s, leader)
                );
                Ok((Active::Cut(Partition::drop_links(&links)?), what, vec![s]))
            }
            Nemesis::Slow => {
                let s = pick(rng, 0.5);
                let kbit = 400;
                let link = SlowLink::slow_udp_port(self.port(s), Duration::from_millis(50), kbit)?;
                let what = format!(
                    "slow {}'s link to {kbit} kbit/s{}",
                    self.describe(s, leader),
                    if link.delayed() { " and 50 ms" } else { "" }
                );
                Ok((Active::Slowed(link), what, vec![s]))
            }
            Nemesis::KillAll => {
                for s in 0..n {
                    self.cluster.kill(self.index(s))?;
                }
                Ok((
                    Active::AllKilled,
                    "kill every node at once".into(),
                    (0..n).collect(),
                ))
            }
            Nemesis::Replace => {
                let followers: Vec<usize> = free
                    .iter()
                    .copied()
                    .filter(|&s| Some(s) != leader)
                    .collect();
                let Some(&s) = followers.get(rng.random_range(0..followers.len().max(1))) else {
                    return Err("no follower to replace".into());
                };
                let what = self.replace(s, shared).await?;
                Ok((Active::Done, what, vec![s]))
            }
        }
    }

    /// Kills the node in `slot`, removes it from the group, wipes its disk, adds a new
    /// node in its place and waits until it is a voter.
    async fn replace(&mut self, slot: usize, shared: &Arc<Shared>) -> Result<String, String> {
        let old = self.index(slot);
        let dead = self
            .cluster
            .node(old)
            .id()
            .ok_or("the node to replace has no id")?;
        self.cluster.kill(old)?;
        self.cluster.wipe(old)?;
        let others: Vec<String> = (0..self.slots.len())
            .filter(|&s| s != slot)
            .map(|s| self.cluster.node(self.index(s)).endpoint())
            .collect();
        let admin = tessera::store::client::Client::with_endpoints(&others, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        loop {
            match admin.remove_member(&dead).await {
                Ok(_) => break,
                Err(e) if started.elapsed() > WAIT => {
                    return Err(format!("remove {}: {e}", crate::cluster::short(&dead)))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let fresh = self.cluster.add_node(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let addr = self.cluster.start(fresh, &[])?;
        loop {
            match admin.add_member(&addr.to_string(), false).await {
                Ok(_) => break,
                Err(e) if started.elapsed() > WAIT * 2 => return Err(format!("add {addr}: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let new_id = addr.id.to_string();
        loop {
            if let Ok(m) = admin.members(false).await {
                if m.members
                    .iter()
                    .any(|x| x.id == new_id && x.role == "voter")
                {
                    break;
                }
            }
            if started.elapsed() > WAIT * 3 {
                return Err(format!(
                    "{new_id} was not promoted to voter within {:?}",
                    WAIT * 3
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let name_old = self.cluster.node(old).name.clone();
        let name_new = self.cluster.node(fresh).name.clone();
        self.slots[slot] = fresh;
        if let Ok(mut endpoints) = shared.endpoints.write() {
            if let Some(e) = endpoints.get_mut(slot) {
                *e = self.cluster.node(fresh).endpoint();
            }
        }
        Ok(format!(
            "replace {name_old} (killed, removed, wiped) by {name_new} (added, promoted)"
        ))
    }

    /// Ends a fault: restarts, resumes, or restores the links.
    pub fn heal(&mut self, active: Active) -> Result<(), String> {
        match active {
            Active::Killed(s) => self.cluster.start(self.index(s), &[]).map(|_| ()),
            Active::Paused(s) => self.cluster.resume(self.index(s)),
            Active::Cut(partition) => partition.heal(),
            Active::Slowed(link) => link.heal(),
            Active::AllKilled => {
                for s in 0..self.slots.len() {
                    self.cluster.start(self.index(s), &[])?;
                }
                Ok(())
            }
            Active::Done => Ok(()),
        }
    }
}
