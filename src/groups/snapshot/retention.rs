//! How much log and which snapshots a member keeps for the members catching up from it,
//! so a catch-up cannot livelock (etcd #7162, Consul #6186, openraft #1719: a slow member
//! fetches snapshot A while the group cuts newer ones, prunes the log past A and drops A
//! itself; the member installs A, finds nobody holding A+1.., and starts over for ever).
//!
//! Two rules, both here, as pure data (instants are passed in, nothing is sent):
//!
//! 1. **Pins.** A member catching up says to every bonded peer which point it needs the
//!    log from ([`SnapshotMessage::Keep`](super::SnapshotMessage::Keep)): the anchor of
//!    the snapshot it fetches while it fetches and installs it, then its commit index
//!    while it streams the entries after it, until it is within half the configured tail
//!    of the leader's commit. Every member (not only the leader: leadership moves) prunes
//!    no entry after the lowest live pin and deletes no snapshot anchored at a pin. A pin
//!    lives while it is refreshed (about every second) and for `pin_ttl` after the last
//!    refresh, or until released; so a member that died pins nothing for long.
//! 2. **Measured tail.** Every member keeps at least `write rate × (ship + install time)
//!    × 2` entries behind its newest snapshot, from the latest transfer any member
//!    reported ([`SnapshotMessage::Shipped`](super::SnapshotMessage::Shipped)) and the
//!    commit rate it sees itself, besides the configured `keep_tail`. A member that
//!    starts a catch-up (and has not pinned yet) or one whose pins did not arrive finds
//!    the tail a transfer of that length needs.
//!
//! Both are bounded by `max_retained` entries behind the newest snapshot: a member whose
//! link cannot carry the write stream would otherwise grow every log without end. Such a
//! pin is ignored (and counted): that member starts over, as before.
//!
//! Why it converges: from the moment a member's pin of A arrives, A stays served and the
//! log after A stays in every log that heard it; A's transfer therefore ends (its chunks
//! never go missing), the install ends, and the leader of that moment (whoever it is)
//! still holds A+1.. and streams it. The node needs one transfer, not a race against the
//! snapshot period. The one window left is between the offer (the session picks the
//! newest snapshot offered) and its first pin (milliseconds): the log after the newest
//! snapshot is only pruned once a snapshot `keep_tail` entries newer is cut, and the
//! snapshot itself only after `retain` newer cuts, so losing it there needs two cuts
//! within that window; the session then picks again.

use crate::groups::Index;
use crate::PeerId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// How often a catching-up member refreshes its pin (well within any sane `pin_ttl`).
pub(crate) const PIN_REFRESH: Duration = Duration::from_secs(1);

/// What the measured tail is multiplied by: the write rate may double during a transfer.
const MARGIN: u64 = 2;

/// The write rate is measured over about this long.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// One commit sample is kept per this long.
const RATE_SAMPLE: Duration = Duration::from_secs(1);

/// One member's pin: it needs the log after `after` (and the snapshot anchored there, if
/// one is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pin {
    after: Index,
    refreshed: Instant,
}

/// How long the latest transfer a member reported took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shipped {
    /// From choosing the snapshot to its last chunk stored, in milliseconds.
    pub ship_ms: u64,
    /// From the last chunk to the state swapped in, in milliseconds.
    pub install_ms: u64,
}

/// The figures of this node's retention, for `/v1/status` and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionFigures {
    /// The latest transfer a member reported (this node's own, or a peer's).
    pub shipped: Option<Shipped>,
    /// Entries committed per second, over about the last 30 seconds.
    pub write_rate: u64,
    /// Entries kept behind the newest snapshot: the configured tail or the measured one.
    pub tail_kept: u64,
    /// The lowest live pin: no entry after it is pruned here.
    pub pinned_from: Option<u64>,
    /// Live pins by member (peer id, the index it needs the log after).
    pub pins: Vec<(PeerId, u64)>,
    /// Live pins ignored because they reach more than `max_retained` entries behind the
    /// newest snapshot (those members cannot keep up and start over).
    pub pins_ignored: u64,
}

/// The settings the rules use (from `SnapshotConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionLimits {
    /// Entries always kept behind the newest snapshot.
    pub keep_tail: u64,
    /// A pin not refreshed for this long is dropped.
    pub pin_ttl: Duration,
    /// No rule keeps more than this many entries behind the newest snapshot.
    pub max_retained: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Retention {
    limits: RetentionLimits,
    pins: BTreeMap<PeerId, Pin>,
    shipped: Option<Shipped>,
    /// (when, commit index) samples, one per `RATE_SAMPLE`, over `RATE_WINDOW`.
    samples: VecDeque<(Instant, Index)>,
}

impl Retention {
    /// No pins, nothing measured.
    pub fn new(limits: RetentionLimits) -> Self {
        Retention {
            limits,
            pins: BTreeMap::new(),
            shipped: None,
            samples: VecDeque::new(),
        }
    }

    /// `peer` needs the log after `after` (replaces its earlier pin).
    pub fn pin(&mut self, peer: PeerId, after: Index, now: Instant) {
        self.pins.insert(
            peer,
            Pin {
                after,
                refreshed: now,
            },
        );
    }

    /// `peer` caught up (or gave up): it needs nothing kept any more.
    pub fn release(&mut self, peer: &PeerId) -> bool {
        self.pins.remove(peer).is_some()
    }

    /// Drops the pins not refreshed within `pin_ttl`; returns whether any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let ttl = self.limits.pin_ttl;
        let before = self.pins.len();
        self.pins
            .retain(|_, pin| now.saturating_duration_since(pin.refreshed) < ttl);
        self.pins.len() != before
    }

    /// A member reported how long its latest transfer took.
    pub fn shipped(&mut self, shipped: Shipped) {
        self.shipped = Some(shipped);
    }

    /// The commit index is `commit` at `now` (sampled once per second).
    pub fn observe_commit(&mut self, commit: Index, now: Instant) {
        let due = self
            .samples
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= RATE_SAMPLE);
        if !due {
            return;
        }
        self.samples.push_back((now, commit));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Entries committed per second over the sampled window (0 before two samples).
    pub fn write_rate(&self) -> u64 {
        let (Some((t0, i0)), Some((t1, i1))) = (self.samples.front(), self.samples.back()) else {
            return 0;
        };
        let ms = t1.saturating_duration_since(*t0).as_millis() as u64;
        if ms == 0 {
            return 0;
        }
        i1.0.saturating_sub(i0.0).saturating_mul(1000) / ms
    }

    /// Entries to keep behind the newest snapshot: `keep_tail`, or what the latest
    /// transfer took at the current write rate (times the margin), whichever is more, at
    /// most `max_retained`.
    pub fn tail_kept(&self) -> u64 {
        let measured = self.shipped.map_or(0, |s| {
            let ms = s.ship_ms.saturating_add(s.install_ms);
            self.write_rate()
                .saturating_mul(ms)
                .saturating_mul(MARGIN)
                .div_ceil(1000)
        });
        let keep_tail = self.limits.keep_tail;
        keep_tail.max(measured.min(self.limits.max_retained.max(keep_tail)))
    }

    /// The lowest pin that is not below `newest - max_retained`, and how many pins are
    /// below that bound (ignored).
    fn floor(&self, newest: Option<Index>) -> (Option<Index>, u64) {
        let bound = newest.map_or(0, |n| n.0.saturating_sub(self.limits.max_retained));
        let (ignored, live): (Vec<&Pin>, Vec<&Pin>) =
            self.pins.values().partition(|pin| pin.after.0 < bound);
        let lowest = live.iter().map(|pin| pin.after).min();
        (lowest, ignored.len() as u64)
    }

    /// Where the log may be pruned to (entries up to and including it go): the newest
    /// snapshot's anchor minus [`Retention::tail_kept`], never past the lowest pin nor
    /// the commit index. `None`: nothing may be pruned (no snapshot, or it would be 0).
    pub fn prune_point(&self, newest: Option<Index>, committed: Index) -> Option<Index> {
        let newest_anchor = newest?;
        let mut point = newest_anchor
            .0
            .saturating_sub(self.tail_kept())
            .min(committed.0);
        if let (Some(floor), _) = self.floor(newest) {
            point = point.min(floor.0);
        }
        (point > 0).then_some(Index(point))
    }

    /// Anchors a live pin names: their snapshots are kept whatever `retain` says.
    pub fn pinned(&self) -> BTreeSet<u64> {
        self.pins.values().map(|p| p.after.0).collect()
    }

    /// The figures now (`newest`: the newest snapshot's anchor, for the pin bound).
    pub fn figures(&self, newest: Option<Index>) -> RetentionFigures {
        let (pinned_from, pins_ignored) = self.floor(newest);
        RetentionFigures {
            shipped: self.shipped,
            write_rate: self.write_rate(),
            tail_kept: self.tail_kept(),
            pinned_from: pinned_from.map(|i| i.0),
            pins: self.pins.iter().map(|(p, pin)| (*p, pin.after.0)).collect(),
            pins_ignored,
        }
    }
}

/// Which held snapshots (anchor indices, any order) retention deletes: all but the newest
/// `retain` (at least 1), sparing those in `pinned`.
pub fn to_delete(
    held: impl IntoIterator<Item = u64>,
    retain: usize,
    pinned: &BTreeSet<u64>,
) -> Vec<u64> {
    let mut held: Vec<u64> = held.into_iter().collect();
    held.sort_unstable();
    let keep_from = held.len().saturating_sub(retain.max(1));
    held[..keep_from]
        .iter()
        .copied()
        .filter(|a| !pinned.contains(a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RetentionLimits {
        RetentionLimits {
            keep_tail: 100,
            pin_ttl: Duration::from_secs(30),
            max_retained: 10_000,
        }
    }

    fn peer(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    #[test]
    fn without_pins_or_measures_the_configured_tail_is_kept() {
        let r = Retention::new(limits());
        assert_eq!(
            r.prune_point(None, Index(500)),
            None,
            "no snapshot, no pruning"
        );
        assert_eq!(
            r.prune_point(Some(Index(1_000)), Index(1_200)),
            Some(Index(900))
        );
        assert_eq!(
            r.prune_point(Some(Index(1_000)), Index(800)),
            Some(Index(800)),
            "never past the commit index"
        );
        assert_eq!(r.prune_point(Some(Index(50)), Index(60)), None);
    }

    #[test]
    fn a_pin_holds_the_log_after_the_snapshot_being_fetched() {
        // The livelock: a member fetches the snapshot at 1,000; two newer ones are cut.
        let mut r = Retention::new(limits());
        let t0 = Instant::now();
        r.pin(peer(1), Index(1_000), t0);
        assert_eq!(
            r.prune_point(Some(Index(3_000)), Index(3_100)),
            Some(Index(1_000)),
            "entries 1,001.. stay for the member installing 1,000"
        );
        assert_eq!(
            to_delete([1_000, 2_000, 3_000], 2, &r.pinned()),
            Vec::<u64>::new(),
            "the pinned snapshot is not deleted by retention"
        );
        // The member moves on (installed, streams from 2,500), then releases.
        r.pin(peer(1), Index(2_500), t0 + Duration::from_secs(1));
        assert_eq!(
            r.prune_point(Some(Index(3_000)), Index(3_100)),
            Some(Index(2_500))
        );
        assert_eq!(
            to_delete([1_000, 2_000, 3_000], 2, &r.pinned()),
            vec![1_000]
        );
        assert!(r.release(&peer(1)));
        assert_eq!(
            r.prune_point(Some(Index(3_000)), Index(3_100)),
            Some(Index(2_900))
        );
    }

    #[test]
    fn the_lowest_of_several_pins_counts() {
        let mut r = Retention::new(limits());
        let t0 = Instant::now();
        r.pin(peer(1), Index(2_000), t0);
        r.pin(peer(2), Index(1_500), t0);
        assert_eq!(
            r.prune_point(Some(Index(3_000)), Index(3_000)),
            Some(Index(1_500))
        );
        assert_eq!(r.figures(Some(Index(3_000))).pinned_from, Some(1_500));
    }

    #[test]
    fn a_silent_member_pins_nothing_after_the_ttl() {
        let mut r = Retention::new(limits());
        let t0 = Instant::now();
        r.pin(peer(1), Index(1_000), t0);
        assert!(
            !r.expire(t0 + Duration::from_secs(29)),
            "refreshed 29 s ago: live"
        );
        r.pin(peer(1), Index(1_000), t0 + Duration::from_secs(29));
        assert!(!r.expire(t0 + Duration::from_secs(58)));
        assert!(
            r.expire(t0 + Duration::from_secs(59)),
            "silent for 30 s: gone"
        );
        assert_eq!(
            r.prune_point(Some(Index(3_000)), Index(3_000)),
            Some(Index(2_900))
        );
    }

    #[test]
    fn a_pin_beyond_max_retained_is_ignored() {
        let mut r = Retention::new(limits());
        r.pin(peer(1), Index(1_000), Instant::now());
        // 20,000 - 10,000 = 10,000 > 1,000: this member cannot keep up; start over.
        assert_eq!(
            r.prune_point(Some(Index(20_000)), Index(20_000)),
            Some(Index(19_900))
        );
        assert_eq!(r.figures(Some(Index(20_000))).pins_ignored, 1);
        assert_eq!(r.figures(Some(Index(20_000))).pinned_from, None);
    }

    #[test]
    fn the_tail_grows_with_measured_ship_time_and_write_rate() {
        let mut r = Retention::new(limits());
        let t0 = Instant::now();
        // 50 entries/s for 10 s.
        for s in 0..=10u64 {
            r.observe_commit(Index(1_000 + 50 * s), t0 + Duration::from_secs(s));
        }
        assert_eq!(r.write_rate(), 50);
        assert_eq!(
            r.tail_kept(),
            100,
            "nothing measured yet: the configured tail"
        );
        // A transfer took 20 s to ship and 2 s to install: 50 × 22 × 2 = 2,200.
        r.shipped(Shipped {
            ship_ms: 20_000,
            install_ms: 2_000,
        });
        assert_eq!(r.tail_kept(), 2_200);
        assert_eq!(
            r.prune_point(Some(Index(3_000)), Index(3_000)),
            Some(Index(800))
        );
        // Bounded by max_retained.
        r.shipped(Shipped {
            ship_ms: 1_000_000,
            install_ms: 0,
        });
        assert_eq!(r.tail_kept(), 10_000);
        let figures = r.figures(Some(Index(3_000)));
        assert_eq!(figures.write_rate, 50);
        assert_eq!(figures.tail_kept, 10_000);
    }

    #[test]
    fn the_write_rate_window_slides() {
        let mut r = Retention::new(limits());
        let t0 = Instant::now();
        r.observe_commit(Index(0), t0);
        r.observe_commit(Index(5), t0 + Duration::from_millis(500)); // not sampled
        assert_eq!(r.write_rate(), 0, "one sample");
        for s in 1..=100u64 {
            // 10/s for 60 s, then 100/s.
            let index = if s <= 60 {
                10 * s
            } else {
                600 + 100 * (s - 60)
            };
            r.observe_commit(Index(index), t0 + Duration::from_secs(s));
        }
        assert!(r.samples.len() <= 32, "bounded: {}", r.samples.len());
        assert_eq!(r.write_rate(), 100, "only the last 30 s count");
    }

    #[test]
    fn retention_keeps_the_newest_and_the_pinned() {
        let none = BTreeSet::new();
        assert_eq!(to_delete([3, 1, 2], 2, &none), vec![1]);
        assert_eq!(
            to_delete([3, 1, 2], 0, &none),
            vec![1, 2],
            "at least one kept"
        );
        assert_eq!(to_delete([1], 2, &none), Vec::<u64>::new());
        let pinned: BTreeSet<u64> = [1].into();
        assert_eq!(to_delete([1, 2, 3, 4], 2, &pinned), vec![2]);
    }
}
