//! The embedded engine: the log in plain files, laid out as C2SP
//! tlog-tiles, with a journal that makes each group-commit batch durable by
//! one write and one fsync.
//!
//! ```text
//! log/
//!   journal/<first index>.seg   append-only frames, one per batch: the batch's leaves and any checkpoint
//!   tile/entries/<N>[.p/<W>]    entry bundles (each entry: u16 big-endian length ‖ leaf bytes)
//!   tile/<L>/<N>[.p/<W>]        hash tiles: 256 hashes of tree level 8·L
//!   checkpoint                  the checkpoint the tiles are complete for
//!   checkpoints                 every checkpoint ever signed, framed, oldest first
//!   probe                       a small file rewritten to tell a disk that can be written
//! ```
//!
//! Every frame, in the journal and in `checkpoints`, is `u32 length ‖ u32
//! CRC-32 ‖ payload` (little-endian), so a torn tail is found at start and
//! cut back to the last whole frame. A batch is answered once its frame is
//! written and `fdatasync`ed; tiles are written later, off the answer's path
//! ([`LogStore::integrate`], at each checkpoint): a full tile once and never
//! again, a partial one under the spec's `.p/<W>` name with the older width
//! removed, each file written aside, synced and renamed into place, and the
//! directories it appeared in synced before `checkpoint` moves on. A journal
//! segment is removed once the tiles hold all of it.
//!
//! In memory the store keeps what the tiles do not yet hold as full tiles:
//! the leaves and the hashes of tree levels 0, 8, 16, … from the start of
//! the rightmost (partial) tile of each level onwards. Every other node is
//! computed from at most 128 hashes of one tile.

use std::{
    collections::{BTreeSet, HashMap},
    fs::{self, File, OpenOptions},
    io::{self, Write},
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use crate::{
    VerifyError,
    merkle::{self, Hash},
    store::{Batch, LogStore, Scan, StoreError},
};

/// The log's directory inside the data directory.
pub const LOG_DIR: &str = "log";
const JOURNAL_DIR: &str = "journal";
const TILE_DIR: &str = "tile";
const CHECKPOINT_FILE: &str = "checkpoint";
const HISTORY_FILE: &str = "checkpoints";
const PROBE_FILE: &str = "probe";
const LOCK_FILE: &str = "lock";
/// How long to wait for the log's lock, which a process that is stopping may still hold.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// A new journal segment is started once the current one is this long.
const SEGMENT_BYTES: u64 = 32 << 20;
/// Leaves and hashes per tile (tlog-tiles: tiles of height 8).
pub const TILE_WIDTH: u64 = 256;
const TILE_HEIGHT: u32 = 8;
/// Decoded entry bundles kept for readers (a search reads a bundle's records in a row).
const CACHED_BUNDLES: usize = 64;
/// The largest leaf an entry bundle can hold (its length is a u16).
pub const MAX_LEAF: usize = u16::MAX as usize;

/// `<N>` of a tile path: three-digit groups, all but the last prefixed `x`.
fn index_path(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// The path, under the log directory, of hash tile `(level, index)` (or of
/// entry bundle `index` when `level` is `None`) holding `width` of 256.
pub fn tile_path(level: Option<u32>, index: u64, width: u64) -> String {
    let level = level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
    let partial = if width == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("{TILE_DIR}/{level}/{}{partial}", index_path(index))
}

/// `payload` framed: length, CRC-32, payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The whole frames at the start of `bytes`, and the length they take: the
/// first frame that is cut short or fails its checksum ends them.
fn frames(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        at += 8 + len;
    }
    (out, at)
}

/// A batch as the journal holds it: its first index, its leaves, any checkpoint.
fn encode_batch(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + batch.leaves.iter().map(|l| l.len() + 4).sum::<usize>());
    out.extend_from_slice(&batch.start.to_le_bytes());
    out.extend_from_slice(&(batch.leaves.len() as u32).to_le_bytes());
    for leaf in &batch.leaves {
        out.extend_from_slice(&(leaf.len() as u32).to_le_bytes());
        out.extend_from_slice(leaf);
    }
    let note = batch.checkpoint.as_deref().unwrap_or("");
    out.extend_from_slice(&(note.len() as u32).to_le_bytes());
    out.extend_from_slice(note.as_bytes());
    out
}

struct Decoded {
    start: u64,
    leaves: Vec<Vec<u8>>,
    checkpoint: Option<String>,
}

fn decode_batch(mut bytes: &[u8]) -> Option<Decoded> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    fn u32_of(bytes: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?) as usize)
    }
    let start = u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?);
    let count = u32_of(&mut bytes)?;
    let mut leaves = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let len = u32_of(&mut bytes)?;
        leaves.push(take(&mut bytes, len)?.to_vec());
    }
    let len = u32_of(&mut bytes)?;
    let note = std::str::from_utf8(take(&mut bytes, len)?).ok()?;
    bytes.is_empty().then(|| Decoded {
        start,
        leaves,
        checkpoint: (!note.is_empty()).then(|| note.to_owned()),
    })
}

/// An entry bundle's bytes.
pub(crate) fn encode_bundle(leaves: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for leaf in leaves {
        out.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
        out.extend_from_slice(leaf);
    }
    out
}

fn decode_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
        out.push(bytes.get(2..2 + len)?.to_vec());
        bytes = &bytes[2 + len..];
    }
    Some(out)
}

fn decode_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes.chunks_exact(32).map(|h| h.try_into().ok()).collect()
}

/// The root of a perfect subtree, from its bottom row.
fn subtree_root(row: &[Hash]) -> Hash {
    let mut row = row.to_vec();
    while row.len() > 1 {
        row = row.chunks(2).map(|p| merkle::node_hash(&p[0], &p[1])).collect();
    }
    row[0]
}

/// The number of complete nodes of tree level `8 · level` in a tree of `size`.
fn level_width(size: u64, level: u32) -> u64 {
    size.checked_shr(TILE_HEIGHT * level).unwrap_or(0)
}

/// The first index held in memory at `size`: that of the rightmost tile.
fn tile_start(width: u64) -> u64 {
    width - width % TILE_WIDTH
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` at `path` whole or not at all: aside, synced, renamed.
/// The caller syncs the directory.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    fs::rename(&tmp, path)
}

fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The hashes of one tree level `8 · L` that the tiles do not hold as full tiles.
#[derive(Debug, Clone, Default)]
struct Row {
    /// The index of `hashes[0]`: a multiple of 256.
    base: u64,
    hashes: Vec<Hash>,
}

/// What is durable, as the store holds it in memory.
struct Tail {
    /// The tiles on disk are complete for this size, that of `checkpoint`.
    tiled: u64,
    size: u64,
    /// The index of `leaves[0]`: the start of the rightmost entry bundle at `tiled`.
    leaf_base: u64,
    leaves: Vec<Vec<u8>>,
    /// Per tile level.
    rows: Vec<Row>,
    /// Checkpoints in the journal that `checkpoints` does not hold yet.
    unfiled: Vec<(u64, String)>,
    latest: Option<(u64, String)>,
}

/// The journal being appended to.
struct Journal {
    dir: PathBuf,
    file: File,
    /// The first index of the current segment.
    start: u64,
    /// Bytes of the current segment known durable.
    len: u64,
    /// The first indices of older segments, oldest first.
    older: Vec<u64>,
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.seg"))
}

/// The log as tiles and a journal in `<data>/log`.
pub struct TileLog {
    dir: PathBuf,
    tail: RwLock<Option<Tail>>,
    journal: Mutex<Option<Journal>>,
    /// The current segment and its durable length, kept after a failed
    /// write so that reopening cuts what may not have reached the disk.
    cut: Mutex<Option<(PathBuf, u64)>>,
    bundles: Mutex<HashMap<u64, Arc<Vec<Vec<u8>>>>>,
    /// Held while tiles are written (integration is not reentrant).
    integrating: Mutex<()>,
    segment_bytes: u64,
    /// Locked for as long as the store is open: one process at a time.
    _lock: File,
}

/// Locks the log directory `dir` for this process, waiting briefly.
fn lock(dir: &Path) -> Result<File, StoreError> {
    fs::create_dir_all(dir).map_err(unavailable)?;
    let file = File::create(dir.join(LOCK_FILE)).map_err(unavailable)?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(unavailable(format!(
                    "the audit log {} is in use (is another civex using this data directory?)",
                    dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(unavailable(e)),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: String) -> StoreError {
    StoreError::Storage(what)
}

impl TileLog {
    /// Opens (creating if needed) the log of the data directory `data_dir`:
    /// loads the rightmost tiles, replays the journal after them and cuts a
    /// torn tail.
    pub fn open(data_dir: &Path) -> Result<TileLog, StoreError> {
        let dir = data_dir.join(LOG_DIR);
        let lock = lock(&dir)?;
        let (tail, journal) = load(&dir)?;
        Ok(TileLog {
            _lock: lock,
            segment_bytes: SEGMENT_BYTES,
            dir,
            tail: RwLock::new(Some(tail)),
            journal: Mutex::new(Some(journal)),
            cut: Mutex::new(None),
            bundles: Mutex::new(HashMap::new()),
            integrating: Mutex::new(()),
        })
    }

    /// Starts a new journal segment once the current one holds `bytes`
    /// (tests use small segments to see them come and go).
    pub fn with_segment_bytes(mut self, bytes: u64) -> TileLog {
        self.segment_bytes = bytes;
        self
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn with_tail<T>(&self, read: impl FnOnce(&Tail) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let tail = self.tail.read().unwrap_or_else(|p| p.into_inner());
        read(
            tail.as_ref()
                .ok_or_else(|| unavailable("the audit log is being reopened after a failed write"))?,
        )
    }

    /// Entry bundle `n`, full (the caller knows it is).
    fn bundle(&self, n: u64) -> Result<Arc<Vec<Vec<u8>>>, StoreError> {
        if let Some(b) = self.bundles.lock().unwrap_or_else(|p| p.into_inner()).get(&n) {
            return Ok(b.clone());
        }
        let path = self.dir.join(tile_path(None, n, TILE_WIDTH));
        let bytes = read_file(&path)
            .map_err(StoreError::storage)?
            .ok_or_else(|| corrupt(format!("entry bundle {} is missing", path.display())))?;
        let leaves = decode_bundle(&bytes)
            .filter(|l| l.len() as u64 == TILE_WIDTH)
            .ok_or_else(|| corrupt(format!("entry bundle {} is malformed", path.display())))?;
        let leaves = Arc::new(leaves);
        let mut cache = self.bundles.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED_BUNDLES {
            cache.clear();
        }
        cache.insert(n, leaves.clone());
        Ok(leaves)
    }

    /// The hashes of full tile `(level, n)`.
    fn hash_tile(&self, level: u32, n: u64) -> Result<Vec<Hash>, StoreError> {
        let path = self.dir.join(tile_path(Some(level), n, TILE_WIDTH));
        let bytes = read_file(&path)
            .map_err(StoreError::storage)?
            .ok_or_else(|| corrupt(format!("hash tile {} is missing", path.display())))?;
        decode_hashes(&bytes)
            .filter(|h| h.len() as u64 == TILE_WIDTH)
            .ok_or_else(|| corrupt(format!("hash tile {} is malformed", path.display())))
    }

    /// Hashes `[from, to)` of tree level `8 · level`, all within one tile.
    fn row_hashes(&self, level: u32, from: u64, to: u64) -> Result<Option<Vec<Hash>>, StoreError> {
        let in_memory = self.with_tail(|tail| {
            let Some(row) = tail.rows.get(level as usize) else {
                return Ok(Some(None));
            };
            if from < row.base {
                return Ok(None);
            }
            let (a, b) = ((from - row.base) as usize, (to - row.base) as usize);
            Ok(Some(row.hashes.get(a..b).map(<[Hash]>::to_vec)))
        })?;
        match in_memory {
            Some(found) => Ok(found),
            None => {
                let tile = self.hash_tile(level, from / TILE_WIDTH)?;
                let at = (from % TILE_WIDTH) as usize;
                Ok(Some(tile[at..at + (to - from) as usize].to_vec()))
            }
        }
    }
}

/// Reads the tiles' rightmost edge and the journal after it.
fn load(dir: &Path) -> Result<(Tail, Journal), StoreError> {
    let journal_dir = dir.join(JOURNAL_DIR);
    fs::create_dir_all(&journal_dir).map_err(unavailable)?;
    let latest_tiled = read_file(&dir.join(CHECKPOINT_FILE)).map_err(unavailable)?;
    let latest_tiled = latest_tiled
        .map(|bytes| {
            let note = String::from_utf8(bytes).map_err(|_| corrupt("the checkpoint file is not text".into()))?;
            let size = crate::checkpoint::size_of(&note)
                .ok_or_else(|| corrupt("the checkpoint file holds no checkpoint".into()))?;
            Ok::<_, StoreError>((size, note))
        })
        .transpose()?;
    let tiled = latest_tiled.as_ref().map_or(0, |(size, _)| *size);

    // The rightmost tile of every level, partial at `tiled`.
    let leaf_base = tile_start(tiled);
    let leaves = match tiled - leaf_base {
        0 => Vec::new(),
        w => {
            let path = dir.join(tile_path(None, leaf_base / TILE_WIDTH, w));
            let bytes = read_file(&path)
                .map_err(unavailable)?
                .ok_or_else(|| corrupt(format!("entry bundle {} is missing", path.display())))?;
            decode_bundle(&bytes)
                .filter(|l| l.len() as u64 <= w)
                .ok_or_else(|| corrupt(format!("entry bundle {} is malformed", path.display())))?
        }
    };
    let mut rows = Vec::new();
    for level in 0.. {
        let width = level_width(tiled, level);
        if width == 0 && level > 0 {
            break;
        }
        let base = tile_start(width);
        let hashes = match width - base {
            0 => Vec::new(),
            w => {
                let path = dir.join(tile_path(Some(level), base / TILE_WIDTH, w));
                let bytes = read_file(&path)
                    .map_err(unavailable)?
                    .ok_or_else(|| corrupt(format!("hash tile {} is missing", path.display())))?;
                decode_hashes(&bytes)
                    .filter(|h| h.len() as u64 == w)
                    .ok_or_else(|| corrupt(format!("hash tile {} is malformed", path.display())))?
            }
        };
        rows.push(Row { base, hashes });
    }
    // Every leaf of the rightmost bundle must match its hash: an edit there
    // is found at start, not only by a full verification.
    let expected = rows[0].hashes.len();
    for i in 0..expected {
        let index = leaf_base + i as u64;
        match leaves.get(i) {
            Some(leaf) if merkle::leaf_hash(leaf) == rows[0].hashes[i] => {}
            _ if leaves.len() < expected => return Err(StoreError::Storage(VerifyError::Missing(index).to_string())),
            _ => return Err(StoreError::Storage(VerifyError::Altered(index).to_string())),
        }
    }

    let mut tail = Tail {
        tiled,
        size: tiled,
        leaf_base,
        leaves,
        rows,
        unfiled: Vec::new(),
        latest: latest_tiled,
    };
    let history = read_history(dir)?;
    if let Some(last) = history.last() {
        tail.latest = Some(last.clone()).filter(|(size, _)| *size >= tiled).or(tail.latest);
    }
    let filed = history.last().map_or(0, |(size, _)| *size);

    // The journal, oldest segment first; only the last may be torn.
    let mut starts: Vec<u64> = fs::read_dir(&journal_dir)
        .map_err(unavailable)?
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    starts.sort_unstable();
    if starts.is_empty() {
        starts.push(tiled);
    }
    let mut end = starts[0];
    if end > tiled {
        return Err(corrupt(format!(
            "records {tiled}..{end} are missing: the tiles end at {tiled}, the journal starts at {end}"
        )));
    }
    let last = starts.len() - 1;
    let mut current_len = 0;
    for (i, &start) in starts.iter().enumerate() {
        let path = segment_path(&journal_dir, start);
        let bytes = read_file(&path).map_err(unavailable)?.unwrap_or_default();
        let (payloads, good) = frames(&bytes);
        if good < bytes.len() {
            if i != last {
                return Err(corrupt(format!("journal segment {} is damaged", path.display())));
            }
            tracing::warn!(
                segment = %path.display(),
                kept = good,
                cut = bytes.len() - good,
                "cutting a torn tail off the audit journal"
            );
            cut_file(&path, good as u64).map_err(unavailable)?;
        }
        if start != end {
            return Err(corrupt(format!(
                "journal segment {} does not follow record {end}",
                path.display()
            )));
        }
        for payload in payloads {
            let batch =
                decode_batch(payload).ok_or_else(|| corrupt(format!("a frame of {} is malformed", path.display())))?;
            if batch.start != end {
                return Err(corrupt(format!(
                    "journal batch at {} does not follow record {end}",
                    batch.start
                )));
            }
            end += batch.leaves.len() as u64;
            for (offset, leaf) in batch.leaves.into_iter().enumerate() {
                if batch.start + offset as u64 >= tail.size {
                    tail.push(leaf);
                }
            }
            if let Some(note) = batch.checkpoint {
                let size = crate::checkpoint::size_of(&note)
                    .ok_or_else(|| corrupt(format!("journal checkpoint at {end} is malformed")))?;
                if size > filed {
                    tail.unfiled.push((size, note.clone()));
                }
                if tail.latest.as_ref().is_none_or(|(s, _)| size >= *s) {
                    tail.latest = Some((size, note));
                }
            }
        }
        if i == last {
            current_len = good as u64;
        }
    }
    if end < tiled {
        return Err(corrupt(format!(
            "the journal ends at record {end} but the tiles at {tiled}"
        )));
    }
    let current = *starts.last().unwrap_or(&tiled);
    let path = segment_path(&journal_dir, current);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(unavailable)?;
    sync_dir(&journal_dir).map_err(unavailable)?;
    starts.pop();
    Ok((
        tail,
        Journal {
            dir: journal_dir,
            file,
            start: current,
            len: current_len,
            older: starts,
        },
    ))
}

fn cut_file(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Every checkpoint in the history file, its torn tail cut.
fn read_history(dir: &Path) -> Result<Vec<(u64, String)>, StoreError> {
    let path = dir.join(HISTORY_FILE);
    let bytes = read_file(&path).map_err(unavailable)?.unwrap_or_default();
    let (payloads, good) = frames(&bytes);
    let mut out = Vec::with_capacity(payloads.len());
    for payload in payloads {
        let note = std::str::from_utf8(payload).map_err(|_| corrupt("the checkpoint history is malformed".into()))?;
        let size = crate::checkpoint::size_of(note)
            .ok_or_else(|| corrupt("the checkpoint history holds a malformed checkpoint".into()))?;
        out.push((size, note.to_owned()));
    }
    if good < bytes.len() {
        tracing::warn!(
            cut = bytes.len() - good,
            "cutting a torn tail off the checkpoint history"
        );
        cut_file(&path, good as u64).map_err(unavailable)?;
    }
    Ok(out)
}

impl Tail {
    /// Appends one leaf, with the hashes of tree levels 0, 8, 16, … it completes.
    fn push(&mut self, leaf: Vec<u8>) {
        let index = self.size;
        let mut hash = merkle::leaf_hash(&leaf);
        self.leaves.push(leaf);
        self.size += 1;
        for level in 0.. {
            if self.rows.len() <= level {
                self.rows.push(Row::default());
            }
            self.rows[level].hashes.push(hash);
            // The node of the next tile level completes with the 256th hash of a tile.
            let width = level_width(index + 1, level as u32);
            if !width.is_multiple_of(TILE_WIDTH) {
                break;
            }
            let row = &self.rows[level];
            let from = (width - TILE_WIDTH - row.base) as usize;
            hash = subtree_root(&row.hashes[from..]);
        }
    }

    fn leaf(&self, index: u64) -> Option<&Vec<u8>> {
        self.leaves
            .get(usize::try_from(index.checked_sub(self.leaf_base)?).ok()?)
    }
}

impl LogStore for TileLog {
    fn append(&self, batch: &Batch, durable: bool) -> Result<(), StoreError> {
        if let Some(big) = batch.leaves.iter().find(|l| l.len() > MAX_LEAF) {
            return Err(StoreError::Storage(format!(
                "a record of {} bytes cannot be stored",
                big.len()
            )));
        }
        let payload = frame(&encode_batch(batch));
        {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            let journal = journal
                .as_mut()
                .ok_or_else(|| unavailable("the audit log is being reopened after a failed write"))?;
            if journal.len >= self.segment_bytes {
                let path = segment_path(&journal.dir, batch.start);
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(unavailable)?;
                sync_dir(&journal.dir).map_err(unavailable)?;
                journal.older.push(journal.start);
                journal.file = file;
                journal.start = batch.start;
                journal.len = 0;
            }
            journal.file.write_all(&payload).map_err(unavailable)?;
            if durable {
                journal.file.sync_data().map_err(unavailable)?;
            }
            journal.len += payload.len() as u64;
        }
        let mut tail = self.tail.write().unwrap_or_else(|p| p.into_inner());
        let tail = tail
            .as_mut()
            .ok_or_else(|| unavailable("the audit log is being reopened after a failed write"))?;
        if tail.size != batch.start {
            return Err(unavailable(format!(
                "batch at {} does not follow record {}",
                batch.start, tail.size
            )));
        }
        for leaf in &batch.leaves {
            tail.push(leaf.clone());
        }
        if let Some(note) = &batch.checkpoint {
            tail.unfiled.push((batch.size, note.clone()));
            tail.latest = Some((batch.size, note.clone()));
        }
        Ok(())
    }

    fn probe(&self, stamp: u64) -> Result<(), StoreError> {
        fs::create_dir_all(&self.dir).map_err(unavailable)?;
        let mut file = File::create(self.dir.join(PROBE_FILE)).map_err(unavailable)?;
        file.write_all(&stamp.to_le_bytes()).map_err(unavailable)?;
        file.sync_data().map_err(unavailable)
    }

    fn discard(&self) {
        if let Some(journal) = self.journal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            *self.cut.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((segment_path(&journal.dir, journal.start), journal.len));
        }
        self.tail.write().unwrap_or_else(|p| p.into_inner()).take();
        self.bundles.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn reopen(&self) -> Result<(), StoreError> {
        if self.journal.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        // What a failed write may have left past the durable length goes first.
        if let Some((path, len)) = self.cut.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            cut_file(&path, len).map_err(unavailable)?;
        }
        let (tail, journal) = load(&self.dir)?;
        *self.tail.write().unwrap_or_else(|p| p.into_inner()) = Some(tail);
        *self.journal.lock().unwrap_or_else(|p| p.into_inner()) = Some(journal);
        Ok(())
    }

    fn size(&self) -> Result<u64, StoreError> {
        self.with_tail(|tail| Ok(tail.size))
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.with_tail(|tail| {
            Ok(match tail.leaf(index) {
                Some(leaf) => Some(Some(leaf.clone())),
                None if index >= tail.size => Some(None),
                None => None,
            })
        })?;
        match found {
            Some(found) => Ok(found),
            None => Ok(Some(
                self.bundle(index / TILE_WIDTH)?[(index % TILE_WIDTH) as usize].clone(),
            )),
        }
    }

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        let (tile_level, height) = (level / TILE_HEIGHT, level % TILE_HEIGHT);
        let from = index << height;
        let to = (index + 1) << height;
        Ok(self
            .row_hashes(tile_level, from, to)?
            .filter(|row| !row.is_empty())
            .map(|row| subtree_root(&row)))
    }

    fn hashes(&self, level: u32, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let one_tile = level.is_multiple_of(TILE_HEIGHT) && from < to && from / TILE_WIDTH == (to - 1) / TILE_WIDTH;
        if !one_tile {
            return (from..to).map_while(|i| self.node(level, i).transpose()).collect();
        }
        Ok(self.row_hashes(level / TILE_HEIGHT, from, to)?.unwrap_or_default())
    }

    fn scan_leaves(&self, visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>) -> Result<(), StoreError> {
        let (leaf_base, size) = self.with_tail(|tail| Ok((tail.leaf_base, tail.size)))?;
        for n in 0..leaf_base / TILE_WIDTH {
            let path = self.dir.join(tile_path(None, n, TILE_WIDTH));
            let bytes = read_file(&path)
                .map_err(StoreError::storage)?
                .ok_or_else(|| corrupt(format!("entry bundle {} is missing", path.display())))?;
            let leaves = decode_bundle(&bytes)
                .ok_or_else(|| corrupt(format!("entry bundle {} is malformed", path.display())))?;
            for (i, leaf) in leaves.iter().enumerate() {
                if visit(n * TILE_WIDTH + i as u64, leaf).is_break() {
                    return Ok(());
                }
            }
        }
        for index in leaf_base..size {
            let Some(leaf) = self.leaf(index)? else { break };
            if visit(index, &leaf).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn level(&self, level: u32) -> Option<Scan<'_, (u64, Hash)>> {
        if !level.is_multiple_of(TILE_HEIGHT) {
            return None;
        }
        let tile_level = level / TILE_HEIGHT;
        let row = match self.with_tail(|tail| Ok(tail.rows.get(tile_level as usize).cloned().unwrap_or_default())) {
            Ok(row) => row,
            Err(e) => return Some(Box::new(std::iter::once(Err(e)))),
        };
        let tiles = (0..row.base / TILE_WIDTH).flat_map(move |n| match self.hash_tile(tile_level, n) {
            Ok(hashes) => hashes
                .into_iter()
                .enumerate()
                .map(|(i, h)| Ok((n * TILE_WIDTH + i as u64, h)))
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        let base = row.base;
        let memory = row
            .hashes
            .into_iter()
            .enumerate()
            .map(move |(i, h)| Ok((base + i as u64, h)));
        Some(Box::new(tiles.chain(memory)))
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let mut all = read_history(&self.dir)?;
        let unfiled = self.with_tail(|tail| Ok(tail.unfiled.clone()))?;
        let filed = all.last().map_or(0, |(size, _)| *size);
        all.extend(unfiled.into_iter().filter(|(size, _)| *size > filed));
        Ok(all)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.with_tail(|tail| Ok(tail.latest.clone()))
    }

    fn integrate(&self) -> Result<(), StoreError> {
        let _one = self.integrating.lock().unwrap_or_else(|p| p.into_inner());
        let work = self.with_tail(|tail| {
            Ok(match &tail.latest {
                Some((size, note)) if *size > tail.tiled => Some(Work::gather(tail, *size, note.clone())),
                _ => None,
            })
        })?;
        let Some(work) = work else { return Ok(()) };
        work.write(&self.dir).map_err(StoreError::storage)?;
        let to = work.size;
        {
            let mut tail = self.tail.write().unwrap_or_else(|p| p.into_inner());
            let Some(tail) = tail.as_mut() else { return Ok(()) };
            tail.tiled = to;
            let leaf_base = tile_start(to);
            tail.leaves.drain(..(leaf_base - tail.leaf_base) as usize);
            tail.leaf_base = leaf_base;
            for (level, row) in tail.rows.iter_mut().enumerate() {
                let base = tile_start(level_width(to, level as u32));
                row.hashes.drain(..(base - row.base) as usize);
                row.base = base;
            }
            tail.unfiled.retain(|(size, _)| *size > work.filed_to);
        }
        // Segments the tiles now hold whole.
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(journal) = journal.as_mut() {
            let mut removed = false;
            while !journal.older.is_empty() {
                let next = journal.older.get(1).copied().unwrap_or(journal.start);
                if next > to {
                    break;
                }
                let first = journal.older.remove(0);
                fs::remove_file(segment_path(&journal.dir, first)).map_err(StoreError::storage)?;
                removed = true;
            }
            if removed {
                sync_dir(&journal.dir).map_err(StoreError::storage)?;
            }
        }
        Ok(())
    }
}

/// The files one integration writes: everything the tiles lack up to `size`.
struct Work {
    size: u64,
    tiled: u64,
    note: String,
    /// Leaves from `leaf_base`, up to `size`.
    leaf_base: u64,
    leaves: Vec<Vec<u8>>,
    rows: Vec<Row>,
    /// Checkpoints to file in the history, oldest first.
    history: Vec<(u64, String)>,
    filed_to: u64,
}

impl Work {
    fn gather(tail: &Tail, size: u64, note: String) -> Work {
        let leaves = tail.leaves[..(size - tail.leaf_base) as usize].to_vec();
        let rows = tail
            .rows
            .iter()
            .enumerate()
            .map(|(level, row)| {
                let width = level_width(size, level as u32);
                Row {
                    base: row.base,
                    hashes: row.hashes[..(width.max(row.base) - row.base) as usize].to_vec(),
                }
            })
            .collect();
        let history: Vec<_> = tail.unfiled.iter().filter(|(s, _)| *s <= size).cloned().collect();
        Work {
            size,
            tiled: tail.tiled,
            note,
            leaf_base: tail.leaf_base,
            leaves,
            rows,
            filed_to: history.last().map_or(0, |(s, _)| *s),
            history,
        }
    }

    fn write(&self, dir: &Path) -> io::Result<()> {
        let mut dirs = BTreeSet::new();
        let mut stale = Vec::new();
        let mut put = |path: PathBuf, bytes: &[u8]| -> io::Result<()> {
            write_file(&path, bytes)?;
            dirs.insert(path.parent().map(Path::to_owned).unwrap_or_default());
            Ok(())
        };
        // Entry bundles from the one partial at `tiled`.
        for (n, chunk) in (self.leaf_base / TILE_WIDTH..).zip(self.leaves.chunks(TILE_WIDTH as usize)) {
            put(dir.join(tile_path(None, n, chunk.len() as u64)), &encode_bundle(chunk))?;
        }
        let old = self.tiled - tile_start(self.tiled);
        if old != 0 {
            stale.push(dir.join(tile_path(None, tile_start(self.tiled) / TILE_WIDTH, old)));
        }
        for (level, row) in self.rows.iter().enumerate() {
            let level = level as u32;
            let width = level_width(self.tiled, level);
            if level_width(self.size, level) == width {
                continue;
            }
            for (n, chunk) in (row.base / TILE_WIDTH..).zip(row.hashes.chunks(TILE_WIDTH as usize)) {
                put(dir.join(tile_path(Some(level), n, chunk.len() as u64)), &chunk.concat())?;
            }
            let old = width - tile_start(width);
            if old != 0 {
                stale.push(dir.join(tile_path(Some(level), tile_start(width) / TILE_WIDTH, old)));
            }
        }
        if !self.history.is_empty() {
            let mut history = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(HISTORY_FILE))?;
            let bytes: Vec<u8> = self
                .history
                .iter()
                .flat_map(|(_, note)| frame(note.as_bytes()))
                .collect();
            history.write_all(&bytes)?;
            history.sync_data()?;
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        write_file(&dir.join(CHECKPOINT_FILE), self.note.as_bytes())?;
        sync_dir(dir)?;
        // Older widths of tiles that grew: nothing refers to them any more.
        for path in stale {
            let _ = fs::remove_file(path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_the_spec() {
        assert_eq!(tile_path(Some(0), 1_234_067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(Some(1), 5, 8), "tile/1/005.p/8");
        assert_eq!(tile_path(None, 1_234_067, 8), "tile/entries/x001/x234/067.p/8");
        assert_eq!(tile_path(None, 0, 256), "tile/entries/000");
    }

    #[test]
    fn frames_end_at_the_first_torn_or_altered_one() {
        let mut bytes = frame(b"one");
        bytes.extend(frame(b"two"));
        let whole = bytes.len();
        bytes.extend(&frame(b"three")[..5]);
        let (found, good) = frames(&bytes);
        assert_eq!(found, vec![&b"one"[..], b"two"]);
        assert_eq!(good, whole);
        bytes[9] ^= 1;
        assert_eq!(frames(&bytes).0.len(), 0);
    }
}
