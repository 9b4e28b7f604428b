//! Core overhead: commands per second through a 3-node cluster of consensus cores in one
//! thread, with an in-memory FIFO network and `InMemoryLogStore`s (sync is a memory copy),
//! so the figure is the cost of the protocol itself, apart from disk and network.
//!
//! Each iteration proposes a batch (1 or 64 commands of 64 bytes) on the leader and drives
//! the cluster until the leader has applied all of them (committed by a majority) and the
//! network is quiet (the followers learned the commit index).
//!
//! Run: `cargo bench --bench raft`.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use tessera::groups::raft::{
    ClusterId, Effects, Entry, Message, Node, ProposalId, ProposalOutcome, RaftConfig, RaftError,
    ReadOutcome, ReadyDriver,
};
use tessera::groups::{InMemoryLogStore, Index, Storage};
use tessera::PeerId;

/// The bench's side of the driver: messages into the FIFO network, applied positions.
struct BenchEffects<'a> {
    from: usize,
    node: &'a mut Node,
    store: &'a mut InMemoryLogStore,
    net: &'a mut VecDeque<(usize, PeerId, Message)>,
    applied: &'a mut Index,
}

impl Effects for BenchEffects<'_> {
    type Store = InMemoryLogStore;
    type Error = RaftError;

    fn core(&mut self) -> (&mut Node, &mut InMemoryLogStore) {
        (self.node, self.store)
    }

    fn send(&mut self, to: PeerId, message: Message, _after_sync: bool) {
        self.net.push_back((self.from, to, message));
    }

    fn apply(&mut self, committed: Vec<Entry>) -> Result<(), RaftError> {
        if let Some(last) = committed.last() {
            *self.applied = last.index;
            self.node.on_applied(last.index);
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        _outcomes: Vec<ProposalOutcome>,
        _reads: Vec<ReadOutcome>,
    ) -> Result<(), RaftError> {
        Ok(())
    }
}

struct Cluster {
    nodes: Vec<Node>,
    drivers: Vec<ReadyDriver>,
    stores: Vec<InMemoryLogStore>,
    net: VecDeque<(usize, PeerId, Message)>,
    applied: Vec<Index>,
    next_id: u64,
}

fn peer(i: usize) -> PeerId {
    PeerId([i as u8 + 1; 32])
}

impl Cluster {
    fn new() -> Self {
        let voters: BTreeSet<PeerId> = (0..3).map(peer).collect();
        let mut c = Cluster {
            nodes: Vec::new(),
            drivers: Vec::new(),
            stores: Vec::new(),
            net: VecDeque::new(),
            applied: vec![Index(0); 3],
            next_id: 0,
        };
        for i in 0..3 {
            let store = InMemoryLogStore::default();
            let mut config = RaftConfig::for_tests();
            config.max_entries_per_append = 256;
            config.max_inflight = 64;
            config.max_apply_batch = 1024;
            let mut node = Node::restart(peer(i), config, i as u64, &store, Index(0)).unwrap();
            node.bootstrap(voters.clone(), ClusterId(1), &store)
                .unwrap();
            c.nodes.push(node);
            c.drivers.push(ReadyDriver::new());
            c.stores.push(store);
        }
        c.nodes[0].force_election_timeout(1);
        c.nodes[0].tick(&c.stores[0]).unwrap();
        c.settle();
        assert!(c.nodes[0].is_leader());
        c
    }

    /// Drives node `i` through the core's one Ready driver.
    fn drive(&mut self, i: usize) {
        let mut fx = BenchEffects {
            from: i,
            node: &mut self.nodes[i],
            store: &mut self.stores[i],
            net: &mut self.net,
            applied: &mut self.applied[i],
        };
        self.drivers[i].drive(&mut fx).unwrap();
    }

    fn settle(&mut self) {
        for i in 0..3 {
            self.drive(i);
        }
        while let Some((from, to, m)) = self.net.pop_front() {
            let j = to.0[0] as usize - 1;
            self.nodes[j].step(peer(from), m, &self.stores[j]).unwrap();
            self.drive(j);
        }
    }

    fn round(&mut self, batch: usize, payload: &[u8]) {
        for _ in 0..batch {
            self.next_id += 1;
            self.nodes[0]
                .propose(ProposalId(self.next_id), payload.to_vec(), &self.stores[0])
                .unwrap();
        }
        let target = self.nodes[0].last().index();
        self.drive(0);
        while self.applied[0] < target {
            let Some((from, to, m)) = self.net.pop_front() else {
                // Commit reached followers lazily; heartbeat to make progress.
                self.nodes[0].tick(&self.stores[0]).unwrap();
                self.drive(0);
                continue;
            };
            let j = to.0[0] as usize - 1;
            self.nodes[j].step(peer(from), m, &self.stores[j]).unwrap();
            self.drive(j);
        }
        // Let the followers learn the commit too, so every round starts from quiet.
        while let Some((from, to, m)) = self.net.pop_front() {
            let j = to.0[0] as usize - 1;
            self.nodes[j].step(peer(from), m, &self.stores[j]).unwrap();
            self.drive(j);
        }
        // Keep memory flat: prune what every node applied.
        let floor = Index(self.applied.iter().min().unwrap().0.saturating_sub(512));
        for s in &mut self.stores {
            s.prune_prefix(floor).unwrap();
            s.sync().unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let payload = vec![7u8; 64];
    let mut group = c.benchmark_group("raft_core_3_nodes");
    group.measurement_time(Duration::from_secs(5));
    for batch in [1usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("commands", batch), &batch, |b, &batch| {
            let mut cluster = Cluster::new();
            b.iter(|| cluster.round(batch, &payload));
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
