//! Bulk writes (snapshot chunks, cut locally or received) pace themselves so RocksDB never
//! stalls the node's other writes.
//!
//! Why: when a family's memtables fill faster than they are flushed, RocksDB stops or
//! slows *every* write to the database, not only that family's. A snapshot cut writes a
//! whole state image (hundreds of megabytes) as fast as it can compress; with the
//! `snapshots` family's two memtables full, the log's group-commit round waited behind it
//! for up to a second at a time (measured: stops of 0.5-1.0 s, several per cut), longer
//! than an election timeout, so followers could not acknowledge and a leader lost its term.
//!
//! How: before a bulk write, [`Store::make_room`] waits while the family has a memtable
//! waiting for its flush (the stop comes at the second one) or while its level-0 files
//! pile up towards the slowdown trigger, and while the database is already stalled. The
//! writer is always a background thread (the cut, the transfer session, a restore), so it
//! can sleep; the log never waits for it. The wait is bounded: past [`MAX_WAIT`] the write
//! goes ahead and RocksDB's own limits apply (a flush that never finishes is a background
//! error that the write then reports).

use crate::error::Error;
use crate::store::{ColumnFamily, Store};
use rocksdb::properties;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The longest a bulk write waits for room.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting bulk write looks again.
const POLL: Duration = Duration::from_millis(2);

/// Level-0 files of a bulk family at which its writers wait for compaction: half of
/// RocksDB's default slowdown trigger (20), so the trigger is never reached by them.
const LEVEL0_WAIT_FILES: u64 = 10;

/// How often RocksDB stopped or slowed the database's writes since it opened, summed over
/// the column families (from `rocksdb.cf-write-stall-stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStalls {
    /// Writes stopped until a flush or compaction caught up.
    pub stops: u64,
    /// Writes slowed to the delayed write rate.
    pub delays: u64,
}

impl Store {
    /// Waits (up to [`MAX_WAIT`]) until a bulk write of `cf` cannot make RocksDB stall the
    /// database: no memtable of `cf` waiting for its flush, its level 0 below
    /// [`LEVEL0_WAIT_FILES`], and no stall in force. The time waited adds to
    /// [`Store::bulk_write_wait`].
    pub(crate) fn make_room(&self, cf: ColumnFamily) {
        if self.has_room(cf) {
            return;
        }
        let start = Instant::now();
        while start.elapsed() < MAX_WAIT {
            std::thread::sleep(POLL);
            if self.has_room(cf) {
                break;
            }
        }
        let waited = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.bulk_waited_us.fetch_add(waited, Ordering::Relaxed);
    }

    /// How long bulk writes waited for room since the store opened: a transfer or a cut
    /// that is slower than its disk shows here (the log's writes had the disk first).
    pub fn bulk_write_wait(&self) -> Duration {
        Duration::from_micros(self.bulk_waited_us.load(Ordering::Relaxed))
    }

    /// Whether a bulk write of `cf` can go ahead now. A property that cannot be read
    /// counts as room: pacing is an optimisation, never a reason to fail a write.
    fn has_room(&self, cf: ColumnFamily) -> bool {
        let handle = self.cf(cf);
        let db = self.db();
        let of_cf = |name| db.property_int_value_cf(handle, name).ok().flatten();
        let of_db = |name| db.property_int_value(name).ok().flatten();
        of_cf(properties::NUM_IMMUTABLE_MEM_TABLE).unwrap_or(0) == 0
            && of_cf(&properties::num_files_at_level(0)).unwrap_or(0) < LEVEL0_WAIT_FILES
            && of_db(properties::IS_WRITE_STOPPED).unwrap_or(0) == 0
            && of_db(properties::ACTUAL_DELAYED_WRITE_RATE).unwrap_or(0) == 0
    }

    /// The write stalls RocksDB imposed since the database opened, over every family.
    pub fn write_stalls(&self) -> Result<WriteStalls, Error> {
        let mut total = WriteStalls::default();
        for cf in ColumnFamily::ALL {
            let text = self
                .db()
                .property_value_cf(self.cf(cf), "rocksdb.cf-write-stall-stats")
                .map_err(|source| Error::Db {
                    op: "read the write stall statistics",
                    cf: cf.name(),
                    source,
                })?
                .unwrap_or_default();
            total.stops += stat(&text, "total-stops");
            total.delays += stat(&text, "total-delays");
        }
        Ok(total)
    }
}

/// The number after `name: ` in RocksDB's `name: value, name: value` text (0 if absent).
fn stat(text: &str, name: &str) -> u64 {
    text.split([',', '\n'])
        .filter_map(|field| field.split_once(": "))
        .find(|(key, _)| key.trim().trim_start_matches("Write Stall (count):").trim() == name)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::stat;

    #[test]
    fn stall_counts_are_read_from_rocksdbs_text() {
        let text =
            "Write Stall (count): cf-l0-file-count-limit-delays-with-ongoing-compaction: 0, \
                    memtable-limit-stops: 3, total-delays: 2, total-stops: 5\n";
        assert_eq!(stat(text, "total-stops"), 5);
        assert_eq!(stat(text, "total-delays"), 2);
        assert_eq!(stat(text, "memtable-limit-stops"), 3);
        assert_eq!(stat(text, "absent"), 0);
    }
}
