//! The peers file: the addresses a durable node knew, kept in its data directory so a
//! restart needs no `--peer`.
//!
//! One peer per line, written to a temporary file and renamed over the old one (a crash
//! leaves the old or the new file, never half of one). A line is `ID@IP:PORT`, or
//! `ID@NAME:PORT` for a peer given by host name (kept by name, so it is resolved again
//! after a restart), or `HOST:PORT` for a peer whose id is not learned yet. Files written
//! before names existed hold only `ID@IP:PORT` lines and are read as they are (no
//! migration); a binary older than names skips the two new forms with a warning. A line
//! that does not parse is skipped with a warning: the file is a hint, and the node still
//! has its `--peer`s.

use crate::network::PeerSpec;
use std::io::Write;
use std::path::Path;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "peers";

/// The addresses in `dir`'s peers file (none when it does not exist).
pub fn load(dir: &Path) -> Vec<PeerSpec> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "cannot read the peers file");
            return Vec::new();
        }
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|line| match line.parse::<PeerSpec>() {
            Ok(addr) => Some(addr),
            Err(err) => {
                tracing::warn!(path = %path.display(), line, %err, "skipping a bad peers line");
                None
            }
        })
        .collect()
}

/// Replaces `dir`'s peers file with `peers`.
pub fn save(dir: &Path, peers: &[PeerSpec]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    for peer in peers {
        writeln!(file, "{peer}")?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::identity::peer_id;
    use crate::network::PeerAddr;

    fn id() -> crate::PeerId {
        peer_id(&iroh::SecretKey::generate().public())
    }

    #[test]
    fn peers_round_trip_and_bad_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_empty());
        let peers: Vec<PeerSpec> = vec![
            PeerAddr::new(id(), "127.0.0.1:7001".parse().unwrap()).into(),
            PeerAddr::new(id(), "127.0.0.2:7002".parse().unwrap()).into(),
            format!("{}@localhost:7003", id()).parse().unwrap(),
            "node-b.example:7004".parse().unwrap(),
        ];
        save(dir.path(), &peers).unwrap();
        assert_eq!(load(dir.path()), peers);
        let mut text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        text.push_str("not-a-peer\n");
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        assert_eq!(load(dir.path()), peers);
    }

    #[test]
    fn a_file_of_old_id_at_ip_lines_reads_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let old = PeerAddr::new(id(), "127.0.0.1:7001".parse().unwrap());
        std::fs::write(dir.path().join(FILE_NAME), format!("{old}\n")).unwrap();
        assert_eq!(load(dir.path()), vec![PeerSpec::from(old)]);
    }
}
