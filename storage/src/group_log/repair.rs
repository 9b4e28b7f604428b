//! Repairing a damaged log at open: find the first damaged entry among those recovery
//! reads (or one a read found damaged in an earlier run), discard it and everything after
//! it, and withhold this node's vote until the log holds that much again.
//!
//! Why truncate and not skip: a skipped entry leaves a hole that log matching (§5.3)
//! cannot see, and an entry kept after a hole may have been replaced at the leader. The
//! leader re-sends everything from the truncation point (or a snapshot when it pruned it).
//!
//! Why withhold the vote: the node may have acknowledged the discarded entries, and the
//! leader may have counted that toward committing them. If the node then voted for a
//! candidate lacking them, that candidate could win and overwrite a committed entry. So
//! the marker (`MetaTag::VoteWithheld` = the last index before the repair) is written in
//! the same batch as the truncation, and the core abstains from every vote and pre-vote
//! and does not campaign until its log reaches the marker again through a leader.

use super::GroupLog;
use crate::error::{hex, Corruption, Error};
use crate::keys::log_key;
use tessera_raft::Index;

/// What [`GroupLog::repair_from`] found and did.
#[derive(Debug)]
pub struct Repair {
    /// The first damaged entry: the log now ends just before it.
    pub index: u64,
    /// The last index before the repair: votes are withheld until the log reaches it.
    pub withheld_until: u64,
    /// The damage found, naming column family and key.
    pub cause: Error,
}

impl GroupLog {
    /// Verifies the stored entries `from..=last` (clamped to what the log holds, and
    /// extended down to a damaged tail noted at open or to the index an earlier run's read
    /// found damaged). At the first damaged one: truncates the log there, caps the commit
    /// index at the new last entry, sets the vote-withheld marker to the old last index
    /// (never lowering one already set) and clears the damage record, as one synced batch,
    /// before it returns. `Ok(None)`: nothing damaged (a stale damage record is cleared).
    ///
    /// Cost: one sequential read of `from..=last`, the entries a restart replays anyway.
    pub fn repair_from(&mut self, from: Index) -> Result<Option<Repair>, Error> {
        let anchor = self.bounds.anchor.index().0;
        let last = self.bounds.last.index().0;
        let in_log = |i: &u64| *i > anchor && *i <= last;
        let marker = self.damage_marker.filter(in_log);
        let mut start = from.0.max(anchor + 1);
        for suspect in [marker, self.suspect_from.filter(in_log)]
            .into_iter()
            .flatten()
        {
            start = start.min(suspect);
        }
        let mut found = if start <= last {
            self.scan_disk(start, last, &mut |_| {})?.err()
        } else {
            None
        };
        if let Some(m) = marker {
            if found.as_ref().is_none_or(|(i, _)| m < *i) {
                let cause = Error::Corruption {
                    cf: "log",
                    key: hex(&log_key(&self.group, m)),
                    kind: Corruption::FoundWhileRunning { index: m },
                };
                found = Some((m, cause));
            }
        }
        self.suspect_from = None;
        let Some((mut index, cause)) = found else {
            if self.damage_marker.is_some() {
                self.clear_damage_marker = true;
                self.operations += 1;
                self.sync()?;
            }
            return Ok(None);
        };
        // The entry before the cut gives the new last term; if it was not verified above
        // and is damaged too, cut there instead.
        while index > anchor + 1 {
            match self.term_at(Index(index - 1)) {
                Err(err) if err.is_corruption() => index -= 1,
                Err(err) => return Err(err),
                Ok(_) => break,
            }
        }
        self.truncate(Index(index))?;
        let mut hs = self.hard_state;
        hs.commit = hs.commit.min(self.bounds.last.index());
        self.set_hard_state(hs);
        let until = self.vote_withheld.map_or(last, |w| w.0.max(last));
        self.set_vote_withheld(Some(Index(until)));
        if self.damage_marker.is_some() {
            self.clear_damage_marker = true;
        }
        self.sync()?;
        Ok(Some(Repair {
            index,
            withheld_until: until,
            cause,
        }))
    }
}
