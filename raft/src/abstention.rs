//! When a node abstains from votes: it may have lost entries it once acknowledged, either
//! because it started with an empty log (`Node::lost_state`) or because a damaged log
//! record was repaired by truncating its log (`Node::vote_withheld`, the store's marker).
//! Helping elect a candidate that lacks such an entry could overwrite a committed entry
//! (§5.4.1's argument needs every voter to still hold what it acknowledged), so until the
//! log is back the node neither votes, pre-votes, campaigns nor takes a transfer; a node
//! that lost its state may still vote for a candidate whose log reaches what the first
//! leader it heard had committed (`abstains_from`).

use super::node::Node;
use crate::{Cursor, Index};

impl Node {
    /// Whether this node abstains from votes because it may have lost state (see
    /// `lost_state` and `vote_withheld`).
    pub(crate) fn may_have_lost_state(&self) -> bool {
        self.lost_state.is_some() || self.vote_withheld.is_some()
    }

    /// Whether this node abstains from a vote for a candidate whose log ends at
    /// `candidate`. A repairing node always does. A node that lost its state does until
    /// it caught up, except for a candidate whose log reaches `(term, index)` of the first
    /// leader it heard and that leader's commit index then: such a log holds everything
    /// that leader had committed (same term: log matching; a later term: that term's
    /// leader held every entry committed before it, leader completeness), so the vote
    /// cannot help elect a log without it. The node's own up-to-date check still applies.
    /// Without that exception, a node that lost its state and one repairing its log, in a
    /// group of three, both abstain and the third can never win (the simulator's seeds
    /// 47766 and 127467).
    pub(crate) fn abstains_from(&self, candidate: Cursor) -> bool {
        if self.vote_withheld.is_some() {
            return true;
        }
        match self.lost_state {
            None => false,
            Some(reached) => reached.is_zero() || candidate < reached,
        }
    }

    /// The vote-withheld marker still in force, if any (see `vote_withheld`).
    pub fn vote_withheld(&self) -> Option<Index> {
        self.vote_withheld
    }

    /// Lifts the vote-withheld marker once the log reached it; the next `Ready` clears
    /// it in the store.
    pub(crate) fn settle_vote_withheld(&mut self) {
        if let Some(until) = self.vote_withheld {
            if self.log.last().index() >= until {
                self.vote_withheld = None;
                self.clear_vote_withheld = true;
            }
        }
    }

    /// Ends the lost-state abstention once the log is committed up to its target.
    pub(crate) fn settle_lost_state(&mut self) {
        if let Some(target) = self.lost_state {
            if !target.is_zero() && self.log.committed >= target.index() {
                self.lost_state = None;
            }
        }
    }
}
