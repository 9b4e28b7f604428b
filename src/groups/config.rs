//! `ConsensusConfig`: the timing and sizing settings every member of a group shares (the
//! seed's struct, same names and defaults), plus the two membership settings tessera adds.
//!
//! Durations are wall-clock; the consensus core counts ticks, so the worker converts them
//! with [`ConsensusConfig::raft_config`] for its tick interval.

use super::machine::LeadershipPreference;
use super::raft::{CampaignPolicy, RaftConfig};
use crate::primitives::Digest;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Timing and membership settings of a consensus group.
///
/// The seed's fields and defaults are kept: heartbeat 500 ms (jitter 150 ms), 10 missed
/// heartbeats, election timeout 2 s (+ up to 500 ms jitter), bootstrap delay 3 s, forward
/// and query timeouts 2 s. tessera adds `bootstrap_expect` and `max_voters` (DESIGN.md,
/// "Consensus and membership") and `quiesce`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusConfig {
    /// Interval between heartbeats a leader sends (and between bond liveness probes).
    pub heartbeat_interval: Duration,
    /// Heartbeats go out every `heartbeat_interval - rand(0, heartbeat_jitter)`.
    pub heartbeat_jitter: Duration,
    /// Consecutive missed heartbeats before a bond is considered dead.
    pub max_missed_heartbeats: u32,
    /// How long a follower waits without hearing from a leader before it starts a
    /// (pre-)election (Raft §5.2). Must be larger than `heartbeat_interval`.
    pub election_timeout: Duration,
    /// Maximum random extra added to `election_timeout`, so split votes are rare (§5.2).
    pub election_timeout_jitter: Duration,
    /// How long a fresh node waits for peers before it may start the first election.
    pub bootstrap_delay: Duration,
    /// How long a follower waits for the leader to acknowledge a forwarded command.
    pub forward_timeout: Duration,
    /// How long a strong query may wait for the leader's confirmation.
    pub query_timeout: Duration,
    /// How many fresh peers must see each other before a new group forms (all of them
    /// compute the same initial voter set). tessera addition.
    pub bootstrap_expect: usize,
    /// Learners are promoted to voters while the group has fewer voters than this (odd).
    /// tessera addition.
    pub max_voters: usize,
    /// Whether an idle group quiesces: its leader stops heartbeating after four idle
    /// heartbeat intervals, its followers stop their election timers, and a closed link
    /// wakes them (see the consensus core's `quiesce.rs`). On by default; off, every group
    /// heartbeats for as long as it lives (for a deployment that would rather pay that than
    /// rely on link loss to notice a dead leader). Every member must use the same: off is
    /// part of the group id. tessera addition.
    #[serde(default = "quiesce_default")]
    pub quiesce: bool,
}

fn quiesce_default() -> bool {
    true
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_jitter: Duration::from_millis(150),
            max_missed_heartbeats: 10,
            election_timeout: Duration::from_secs(2),
            election_timeout_jitter: Duration::from_millis(500),
            bootstrap_delay: Duration::from_secs(3),
            forward_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(2),
            bootstrap_expect: 3,
            max_voters: 5,
            quiesce: true,
        }
    }
}

impl ConsensusConfig {
    /// The consensus core's settings for a driver that ticks every `tick`, for a node of
    /// this leadership preference.
    pub fn raft_config(&self, tick: Duration, preference: LeadershipPreference) -> RaftConfig {
        let tick_ms = tick.as_millis().max(1);
        let ticks =
            |d: Duration| -> u32 { (d.as_millis() / tick_ms).clamp(1, u32::MAX as u128) as u32 };
        let heartbeat_ticks = ticks(self.heartbeat_interval);
        RaftConfig {
            heartbeat_ticks,
            election_ticks: ticks(self.election_timeout).max(heartbeat_ticks + 1),
            election_jitter_ticks: (self.election_timeout_jitter.as_millis() / tick_ms) as u32,
            bootstrap_ticks: (self.bootstrap_delay.as_millis() / tick_ms) as u32,
            forward_timeout_ticks: ticks(self.forward_timeout),
            query_timeout_ticks: ticks(self.query_timeout),
            max_entries_per_append: 256,
            max_bytes_per_append: 4 << 20,
            max_inflight: 64,
            max_apply_batch: 1024,
            max_voters: self.max_voters,
            replay_threshold: 8_192,
            // Four heartbeat intervals of idleness (2 s by default): long enough that a
            // group under steady load never quiesces between writes.
            quiesce_after_ticks: if self.quiesce {
                heartbeat_ticks.saturating_mul(4)
            } else {
                0
            },
            campaign: match preference {
                LeadershipPreference::Normal => CampaignPolicy::Normal,
                LeadershipPreference::Reluctant => CampaignPolicy::Reluctant,
                LeadershipPreference::Observer => CampaignPolicy::Never,
            },
        }
    }

    /// A builder starting from the defaults.
    pub fn builder() -> ConsensusConfigBuilder {
        ConsensusConfigBuilder(ConsensusConfig::default())
    }

    /// A digest of the settings every member must share; part of the group id.
    ///
    /// Quiescing off adds a part; on (the default) adds none, so groups formed before the
    /// setting existed keep their id.
    pub fn digest(&self) -> Digest {
        let mut parts = vec![
            self.heartbeat_interval.as_millis().to_le_bytes(),
            self.heartbeat_jitter.as_millis().to_le_bytes(),
            u128::from(self.max_missed_heartbeats).to_le_bytes(),
            (self.max_voters as u128).to_le_bytes(),
        ];
        if !self.quiesce {
            parts.push(*b"quiescing off\0\0\0");
        }
        Digest::from_parts(&parts)
    }
}

/// Builds a [`ConsensusConfig`]; every setter is named `with_<field>` as in the seed.
#[derive(Debug, Clone)]
pub struct ConsensusConfigBuilder(ConsensusConfig);

macro_rules! setter {
    ($name:ident, $field:ident, $ty:ty) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.0.$field = value;
            self
        }
    };
}

impl ConsensusConfigBuilder {
    setter!(with_heartbeat_interval, heartbeat_interval, Duration);
    setter!(with_heartbeat_jitter, heartbeat_jitter, Duration);
    setter!(with_max_missed_heartbeats, max_missed_heartbeats, u32);
    setter!(with_election_timeout, election_timeout, Duration);
    setter!(
        with_election_timeout_jitter,
        election_timeout_jitter,
        Duration
    );
    setter!(with_bootstrap_delay, bootstrap_delay, Duration);
    setter!(with_forward_timeout, forward_timeout, Duration);
    setter!(with_query_timeout, query_timeout, Duration);
    setter!(with_bootstrap_expect, bootstrap_expect, usize);
    setter!(with_max_voters, max_voters, usize);
    setter!(with_quiesce, quiesce, bool);

    /// The finished configuration, or why it is unusable.
    pub fn build(self) -> Result<ConsensusConfig, ConfigError> {
        let c = self.0;
        if c.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if c.election_timeout <= c.heartbeat_interval {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election: c.election_timeout,
                heartbeat: c.heartbeat_interval,
            });
        }
        if c.max_voters == 0 || c.max_voters.is_multiple_of(2) {
            return Err(ConfigError::MaxVotersNotOdd(c.max_voters));
        }
        if c.bootstrap_expect == 0 {
            return Err(ConfigError::ZeroBootstrapExpect);
        }
        Ok(c)
    }
}

/// A [`ConsensusConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Heartbeats every 0 ms.
    #[error("heartbeat_interval must be above zero")]
    ZeroHeartbeat,
    /// Followers would time out between two heartbeats.
    #[error("election_timeout {election:?} must exceed heartbeat_interval {heartbeat:?}")]
    ElectionNotAboveHeartbeat {
        /// The election timeout given.
        election: Duration,
        /// The heartbeat interval given.
        heartbeat: Duration,
    },
    /// An even (or zero) voter cap buys no extra fault tolerance.
    #[error("max_voters must be odd and above zero, got {0}")]
    MaxVotersNotOdd(usize),
    /// A group of zero peers never forms.
    #[error("bootstrap_expect must be at least 1")]
    ZeroBootstrapExpect,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let c = ConsensusConfig::default();
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.heartbeat_jitter, Duration::from_millis(150));
        assert_eq!(c.max_missed_heartbeats, 10);
        assert_eq!(c.election_timeout, Duration::from_secs(2));
        assert_eq!(c.election_timeout_jitter, Duration::from_millis(500));
        assert_eq!(c.bootstrap_delay, Duration::from_secs(3));
        assert_eq!(c.forward_timeout, Duration::from_secs(2));
        assert_eq!(c.query_timeout, Duration::from_secs(2));
        assert_eq!(c.max_voters, 5);
        assert!(c.quiesce);
    }

    #[test]
    fn quiescing_off_stops_it_in_the_core_and_changes_the_group_id_on_alone() {
        let on = ConsensusConfig::default();
        let off = ConsensusConfig::builder()
            .with_quiesce(false)
            .build()
            .unwrap();
        let tick = Duration::from_millis(50);
        let normal = LeadershipPreference::Normal;
        assert_eq!(on.raft_config(tick, normal).quiesce_after_ticks, 40);
        assert_eq!(off.raft_config(tick, normal).quiesce_after_ticks, 0);
        assert_ne!(on.digest(), off.digest(), "members must agree on it");
        // The default's digest is the one of before the setting: existing groups keep
        // their id.
        let before = Digest::from_parts(&[
            500u128.to_le_bytes(),
            150u128.to_le_bytes(),
            10u128.to_le_bytes(),
            5u128.to_le_bytes(),
        ]);
        assert_eq!(on.digest(), before);
    }

    #[test]
    fn builder_checks() {
        assert!(ConsensusConfig::builder()
            .with_max_voters(4)
            .build()
            .is_err());
        assert!(ConsensusConfig::builder()
            .with_election_timeout(Duration::from_millis(100))
            .build()
            .is_err());
        let c = ConsensusConfig::builder()
            .with_election_timeout(Duration::from_millis(300))
            .with_heartbeat_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        assert_eq!(c.election_timeout, Duration::from_millis(300));
    }
}
