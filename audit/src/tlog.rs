//! The log as C2SP tlog-tiles resources, read from any engine: the
//! resource paths a client asks for, and the bytes of each tile and entry
//! bundle up to the size of the newest checkpoint.
//!
//! A hash tile `tile/<L>/<N>[.p/<W>]` is `W` (256 when full) hashes of tree
//! level `8·L` from index `256·N`; an entry bundle `tile/entries/<N>[.p/<W>]`
//! is `W` leaves from index `256·N`, each a big-endian u16 length and the
//! leaf's bytes. Only resources that the newest checkpoint's tree holds
//! whole are served: a client asks for partial tiles only of the sizes it
//! has a checkpoint for.

use crate::{
    AuditError, AuditLog,
    merkle::Hash,
    tiles::{TILE_WIDTH, encode_bundle},
};

/// The highest tile level the spec allows.
const MAX_LEVEL: u8 = 63;

/// One tile or entry bundle a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// The tile's level; `None` for an entry bundle.
    pub level: Option<u8>,
    /// The tile's index within its level.
    pub index: u64,
    /// Hashes or entries in it: 256 for a full tile, 1–255 for a partial one.
    pub width: u64,
}

impl Tile {
    /// Parses the path after `tile/`: `<L>/<N>[.p/<W>]` or
    /// `entries/<N>[.p/<W>]`, in the spec's one spelling only (no leading
    /// zeros in `<L>` or `<W>`, no leading `x000` group in `<N>`), so each
    /// resource has one name and a cache holds it once.
    pub fn parse(path: &str) -> Option<Tile> {
        let (level, rest) = path.split_once('/')?;
        let level = match level {
            "entries" => None,
            l => Some(decimal(l).filter(|&l| l <= u64::from(MAX_LEVEL))? as u8),
        };
        let (groups, width) = match rest.split_once(".p/") {
            Some((groups, w)) => (groups, decimal(w).filter(|w| (1..TILE_WIDTH).contains(w))?),
            None => (rest, TILE_WIDTH),
        };
        let groups: Vec<&str> = groups.split('/').collect();
        let (last, upper) = groups.split_last()?;
        if upper.first() == Some(&"x000") {
            return None;
        }
        let mut index: u64 = 0;
        for group in upper.iter().map(|g| g.strip_prefix('x')).chain([Some(*last)]) {
            let group = group.filter(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))?;
            index = index.checked_mul(1000)?.checked_add(group.parse().ok()?)?;
        }
        Some(Tile { level, index, width })
    }

    /// The tree size this resource needs: its last hash or entry covers the
    /// leaves up to here. `None` past any tree that can be.
    pub fn needs(&self) -> Option<u64> {
        let span = TILE_WIDTH.checked_pow(u32::from(self.level.unwrap_or(0)))?;
        self.index
            .checked_mul(TILE_WIDTH)?
            .checked_add(self.width)?
            .checked_mul(span)
    }

    /// Whether it is an entry bundle (which may be compressed) rather than a hash tile.
    pub fn is_entries(&self) -> bool {
        self.level.is_none()
    }
}

/// A decimal with no leading zeros.
fn decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

impl AuditLog {
    /// The newest stored checkpoint note and its tree size; what the tiles are served up to.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, AuditError> {
        let reach = self.tree_size()?;
        Ok(self.store().latest_checkpoint()?.filter(|(size, _)| *size <= reach))
    }

    /// The bytes of `tile` if the tree of `size` (a checkpoint's) holds it whole.
    pub fn tile(&self, tile: &Tile, size: u64) -> Result<Option<Vec<u8>>, AuditError> {
        if tile.needs().is_none_or(|needs| needs > size) {
            return Ok(None);
        }
        let from = tile.index * TILE_WIDTH;
        let Some(level) = tile.level else {
            let mut leaves = Vec::with_capacity(tile.width as usize);
            for index in from..from + tile.width {
                let leaf = self
                    .leaf(index)?
                    .ok_or_else(|| AuditError::Corrupt(format!("leaf {index} of a checkpointed tree is missing")))?;
                leaves.push(leaf);
            }
            return Ok(Some(encode_bundle(&leaves)));
        };
        let hashes: Vec<Hash> = self.store().hashes(u32::from(level) * 8, from, from + tile.width)?;
        if hashes.len() as u64 != tile.width {
            return Err(AuditError::Corrupt(format!(
                "tile {level}/{} of a checkpointed tree holds {} of {} hashes",
                tile.index,
                hashes.len(),
                tile.width
            )));
        }
        Ok(Some(hashes.concat()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(level: Option<u8>, index: u64, width: u64) -> Option<Tile> {
        Some(Tile { level, index, width })
    }

    #[test]
    fn paths_parse_in_the_spec_spelling_only() {
        assert_eq!(Tile::parse("0/000"), tile(Some(0), 0, 256));
        assert_eq!(Tile::parse("2/x001/x234/067.p/8"), tile(Some(2), 1_234_067, 8));
        assert_eq!(Tile::parse("entries/012.p/255"), tile(None, 12, 255));
        assert_eq!(Tile::parse("63/999"), tile(Some(63), 999, 256));
        for bad in [
            "",
            "0",
            "0/",
            "00/000",
            "64/000",
            "0/0",
            "0/0000",
            "0/x000/001",
            "0/001/002",
            "0/x1/002",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "0/000.p/",
            "entry/000",
            "0/-01",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert_eq!(Tile::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_tile_needs_the_leaves_its_last_hash_covers() {
        assert_eq!(Tile::parse("entries/000.p/5").unwrap().needs(), Some(5));
        assert_eq!(Tile::parse("0/001").unwrap().needs(), Some(512));
        assert_eq!(Tile::parse("1/000.p/17").unwrap().needs(), Some(17 * 256));
        assert_eq!(Tile::parse("2/000.p/1").unwrap().needs(), Some(65_536));
        assert_eq!(Tile::parse("63/000").unwrap().needs(), None);
    }
}
