//! The core's settings, in ticks (the core has no clock: the driver calls `tick()` every
//! tick interval). The `tessera` crate derives them from a group's `ConsensusConfig`.

/// Settings of one consensus core. Times are in ticks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: u32,
    /// Base election timeout (§5.2); also the check-quorum period and the leader lease
    /// within which votes and pre-votes are refused.
    pub election_ticks: u32,
    /// The randomized timeout is `election_ticks + rand(0 .. election_jitter_ticks + 1)`.
    pub election_jitter_ticks: u32,
    /// A fresh node (term 0) waits this long before it may campaign.
    pub bootstrap_ticks: u32,
    /// A forwarded command not acknowledged within this fails.
    pub forward_timeout_ticks: u32,
    /// A read index not confirmed within this fails.
    pub query_timeout_ticks: u32,
    /// At most this many entries per `AppendEntries`.
    pub max_entries_per_append: usize,
    /// At most this many payload bytes per `AppendEntries` (at least one entry is always
    /// sent): a batch of large commands must stay under the link's frame cap (16 MiB), or
    /// the receiver closes the link and the follower never catches up.
    pub max_bytes_per_append: usize,
    /// At most this many `AppendEntries` in flight per follower.
    pub max_inflight: usize,
    /// At most this many committed entries per `Ready`.
    pub max_apply_batch: usize,
    /// The leader promotes catching-up learners while voters are fewer than this.
    pub max_voters: usize,
    /// Log-replay catch-up, in entries (0 = off). When a probe finds a follower more than
    /// this many entries behind the leader's commit index, the leader stops streaming to it
    /// (`ProgressState::Sync`) and asks it to catch up by itself
    /// (`AppendEntries::catch_up`): the follower reports a [`CatchUp`](super::CatchUp) and
    /// its worker pulls committed entries from several peers
    /// ([`Node::on_replayed`](super::Node::on_replayed)).
    pub replay_threshold: u64,
    /// Quiescence (see `quiesce.rs`): a leader whose group stayed idle (everything
    /// committed and replicated to every member, nothing pending) for this many ticks in a
    /// row tells its followers so and stops heartbeating; they stop their election timers.
    /// 0 disables it. Should be a few heartbeat intervals.
    pub quiesce_after_ticks: u32,
    /// When this node campaigns.
    pub campaign: CampaignPolicy,
    /// Test-only switches that disable one safety rule each, so the simulator can prove it
    /// catches the violation. They exist only in this crate's test build.
    #[cfg(test)]
    pub(crate) knobs: Knobs,
}

/// When a node campaigns for leadership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CampaignPolicy {
    /// At its randomized election timeout.
    #[default]
    Normal,
    /// After three times its randomized election timeout, so another node usually wins.
    Reluctant,
    /// Never (an observer): it also never votes.
    Never,
}

/// Test-only rule switches (all off by default; see `sim/runs.rs`). Outside this crate's
/// tests [`RaftConfig::knobs`] always answers "all off".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Knobs {
    /// Commit by counting replicas of any entry, not only current-term ones (§5.4.2).
    pub commit_any_term: bool,
    /// Do not append a no-op at the start of a term.
    pub skip_noop: bool,
    /// Leave the vote out of the persisted hard state.
    pub forget_vote: bool,
    /// Acknowledge appended entries before they are durable.
    pub ack_before_sync: bool,
}

impl RaftConfig {
    /// The safety-off switches in force: always all off outside this crate's tests.
    pub(crate) fn knobs(&self) -> Knobs {
        #[cfg(test)]
        {
            self.knobs
        }
        #[cfg(not(test))]
        {
            Knobs::default()
        }
    }

    /// A configuration for tests and the simulator: heartbeat every tick, election after
    /// 10–20 ticks, no bootstrap delay, log replay past 64 entries behind, no quiescence.
    pub fn for_tests() -> Self {
        RaftConfig {
            heartbeat_ticks: 1,
            election_ticks: 10,
            election_jitter_ticks: 10,
            bootstrap_ticks: 0,
            forward_timeout_ticks: 30,
            query_timeout_ticks: 30,
            max_entries_per_append: 8,
            max_bytes_per_append: 1 << 20,
            max_inflight: 4,
            max_apply_batch: 64,
            max_voters: 5,
            replay_threshold: 64,
            quiesce_after_ticks: 0,
            campaign: CampaignPolicy::Normal,
            #[cfg(test)]
            knobs: Knobs::default(),
        }
    }
}
