//! The audit log in the deployment's database, as a [`SharedLog`]: every
//! gateway sequences its batches into `civex_log_batches` under the head
//! row's lock, with the consents' uses and withdrawals in the same
//! transaction, and whichever gateway takes the tree row's lock integrates
//! the new records into hash tiles and signs a checkpoint of them.
//!
//! Hash tiles are C2SP tlog-tiles' (256 hashes of tree level 8·L per tile
//! of level L); a partial tile grows in place, and a node between tile
//! levels is hashed up from the tile below it. Full tiles and batches
//! never change, so readers cache them.

use std::{
    collections::{BTreeMap, HashMap},
    ops::ControlFlow,
    sync::{Arc, Mutex},
};

use civex_audit::{
    IndexStore, LogStore, RefusalCount, StoreError as LogError, Usage,
    merkle::{self, Frontier, Hash},
    shared::{Head, Integrated, Integration, Layout, SharedLog},
    store::{Batch, IndexKey, Scan},
};
use deadpool_postgres::{GenericClient, Pool};
use serde::{Deserialize, Serialize};

use tokio_postgres::Row;

use super::{
    Db, Param, failed,
    state::{from_nanos, nanos},
};

/// Hashes per tile, and tree levels per tile level.
const TILE: u64 = 256;
const TILE_HEIGHT: u32 = 8;
/// Tiles and batches kept in memory per gateway.
const CACHED: usize = 256;
/// SQLSTATE of a row lock that NOWAIT could not take.
const LOCK_NOT_AVAILABLE: &str = "55P03";

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// Stored batches: `(u32 length LE ‖ leaf)*`.
fn frame(leaves: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.iter().map(|l| l.len() + 4).sum());
    for leaf in leaves {
        out.extend_from_slice(&(leaf.len() as u32).to_le_bytes());
        out.extend_from_slice(leaf);
    }
    out
}

fn unframe(start: u64, mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut leaves = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| format!("the batch at {start} is cut short"))?;
        let len = u32::from_le_bytes(*len) as usize;
        let leaf = rest
            .get(..len)
            .ok_or_else(|| format!("the batch at {start} is cut short"))?;
        leaves.push(leaf.to_vec());
        bytes = &rest[len..];
    }
    Ok(leaves)
}

/// One stored batch.
struct Stored {
    start: u64,
    leaves: Vec<Vec<u8>>,
}

fn stored(row: &tokio_postgres::Row) -> Result<Stored, String> {
    let start = row.get::<_, i64>(0) as u64;
    let leaves = unframe(start, row.get(2))?;
    if leaves.len() as i64 != i64::from(row.get::<_, i32>(1)) {
        return Err(format!(
            "the batch at {start} holds {} records, not its count",
            leaves.len()
        ));
    }
    Ok(Stored { start, leaves })
}

/// A bounded map: when full it forgets everything (the cached rows are
/// cheap to read again, and a log is read mostly near its end).
struct Cache<K, V>(Mutex<BTreeMap<K, Arc<V>>>);

impl<K: Ord + Copy, V> Cache<K, V> {
    fn new() -> Self {
        Cache(Mutex::new(BTreeMap::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<K, Arc<V>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, key: K, value: Arc<V>) {
        let mut map = self.lock();
        if map.len() >= CACHED {
            map.clear();
        }
        map.insert(key, value);
    }
}

/// The audit log of a deployment.
pub struct PgLog {
    db: Db,
    batches: Cache<u64, Stored>,
    /// (tile level, tile index) → the tile's hashes as last read.
    tiles: Cache<(u32, u64), Vec<u8>>,
}

impl PgLog {
    pub(crate) fn new(db: Db) -> PgLog {
        PgLog {
            db,
            batches: Cache::new(),
            tiles: Cache::new(),
        }
    }

    fn block<T: Send + 'static, Fut>(&self, f: impl FnOnce(Pool) -> Fut) -> Result<T, LogError>
    where
        Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
    {
        self.db.block(f).map_err(LogError::Unavailable)
    }

    /// The rows of `sql` with `params`.
    fn query(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, LogError> {
        self.db.query_blocking(sql, params).map_err(LogError::Unavailable)
    }

    fn one(&self, sql: &'static str) -> Result<i64, LogError> {
        let rows = self.query(sql, vec![])?;
        let row = rows
            .first()
            .ok_or_else(|| LogError::Unavailable(failed("a coordination row is missing")))?;
        Ok(row.get(0))
    }

    /// The batch holding record `index`.
    fn batch(&self, index: u64) -> Result<Option<Arc<Stored>>, LogError> {
        if let Some((_, b)) = self.batches.lock().range(..=index).next_back()
            && index < b.start + b.leaves.len() as u64
        {
            return Ok(Some(b.clone()));
        }
        let rows = self.query(
            "SELECT start, count, leaves FROM civex_log_batches WHERE start <= $1 ORDER BY start DESC LIMIT 1",
            vec![Box::new(index as i64)],
        )?;
        let found = rows.first().map(stored).transpose().map_err(LogError::Unavailable)?;
        let Some(batch) = found.filter(|b| index < b.start + b.leaves.len() as u64) else {
            return Ok(None);
        };
        let batch = Arc::new(batch);
        self.batches.put(batch.start, batch.clone());
        Ok(Some(batch))
    }

    /// The first `count` hashes of tile (`level`, `index`), if it has them.
    fn tile(&self, level: u32, index: u64, count: u64) -> Result<Option<Arc<Vec<u8>>>, LogError> {
        let enough = |t: &Arc<Vec<u8>>| t.len() as u64 >= count * 32;
        if let Some(t) = self.tiles.lock().get(&(level, index)).filter(|t| enough(t)) {
            return Ok(Some(t.clone()));
        }
        let rows = self.query(
            "SELECT hashes FROM civex_log_tiles WHERE level = $1 AND idx = $2",
            vec![Box::new(level as i32), Box::new(index as i64)],
        )?;
        let Some(tile) = rows.first().map(|r| Arc::new(r.get::<_, Vec<u8>>(0))) else {
            return Ok(None);
        };
        self.tiles.put((level, index), tile.clone());
        Ok(Some(tile).filter(enough))
    }
}

fn hash_at(tile: &[u8], i: usize) -> Hash {
    let mut h = [0; 32];
    h.copy_from_slice(&tile[i * 32..i * 32 + 32]);
    h
}

/// The root of `hashes` (a power of two of them), hashed up pairwise.
fn subtree(mut hashes: Vec<Hash>) -> Hash {
    while hashes.len() > 1 {
        hashes = hashes.chunks(2).map(|p| merkle::node_hash(&p[0], &p[1])).collect();
    }
    hashes[0]
}

impl LogStore for PgLog {
    fn append(&self, _batch: &Batch, _durable: bool) -> Result<(), LogError> {
        Err(LogError::storage(
            "a shared log is written by sequencing, not by appending a laid-out batch",
        ))
    }

    fn probe(&self, stamp: u64) -> Result<(), LogError> {
        let stamp = stamp as i64;
        self.block(move |pool| async move {
            let client = pool.get().await.map_err(failed)?;
            client
                .execute("UPDATE civex_log_probe SET stamp = $1 WHERE id = 1", &[&stamp])
                .await
                .map(drop)
                .map_err(failed)
        })
    }

    fn discard(&self) {
        self.tiles.lock().clear();
        self.batches.lock().clear();
    }

    fn reopen(&self) -> Result<(), LogError> {
        self.one("SELECT next FROM civex_log_head WHERE id = 1").map(drop)
    }

    fn size(&self) -> Result<u64, LogError> {
        Ok(self.one("SELECT next FROM civex_log_head WHERE id = 1")? as u64)
    }

    fn tree_size(&self) -> Result<u64, LogError> {
        Ok(self.one("SELECT size FROM civex_log_tree WHERE id = 1")? as u64)
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.batch(index)?.map(|b| b.leaves[(index - b.start) as usize].clone()))
    }

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, LogError> {
        let below = level % TILE_HEIGHT;
        let width = 1u64 << below;
        let first = index << below;
        let (tile_level, tile) = (level / TILE_HEIGHT, first / TILE);
        let offset = first % TILE;
        let Some(hashes) = self.tile(tile_level, tile, offset + width)? else {
            return Ok(None);
        };
        let hashes = (offset..offset + width).map(|i| hash_at(&hashes, i as usize)).collect();
        Ok(Some(subtree(hashes)))
    }

    fn scan_leaves(&self, visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>) -> Result<(), LogError> {
        let mut from = 0i64;
        loop {
            let rows: Vec<Stored> = self.block(move |pool| async move {
                let client = pool.get().await.map_err(failed)?;
                let rows = client
                    .query(
                        "SELECT start, count, leaves FROM civex_log_batches WHERE start >= $1 ORDER BY start LIMIT 64",
                        &[&from],
                    )
                    .await
                    .map_err(failed)?;
                rows.iter().map(stored).collect()
            })?;
            let Some(last) = rows.last() else { return Ok(()) };
            from = (last.start + last.leaves.len() as u64) as i64;
            for batch in &rows {
                for (i, leaf) in batch.leaves.iter().enumerate() {
                    if visit(batch.start + i as u64, leaf).is_break() {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn level(&self, level: u32) -> Option<Scan<'_, (u64, Hash)>> {
        if !level.is_multiple_of(TILE_HEIGHT) {
            return None;
        }
        let tile_level = (level / TILE_HEIGHT) as i32;
        let mut next_tile = 0i64;
        let mut buffer: std::vec::IntoIter<(u64, Hash)> = Vec::new().into_iter();
        let mut done = false;
        Some(Box::new(std::iter::from_fn(move || {
            loop {
                if let Some(item) = buffer.next() {
                    return Some(Ok(item));
                }
                if done {
                    return None;
                }
                let from = next_tile;
                let rows: Result<Vec<(i64, Vec<u8>)>, LogError> = self.block(move |pool| async move {
                    let client = pool.get().await.map_err(failed)?;
                    let rows = client
                        .query(
                            "SELECT idx, hashes FROM civex_log_tiles WHERE level = $1 AND idx >= $2 ORDER BY idx LIMIT 64",
                            &[&tile_level, &from],
                        )
                        .await
                        .map_err(failed)?;
                    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                });
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                };
                done = rows.len() < 64;
                let mut items = Vec::new();
                for (tile, hashes) in rows {
                    next_tile = tile + 1;
                    for i in 0..hashes.len() / 32 {
                        items.push((tile as u64 * TILE + i as u64, hash_at(&hashes, i)));
                    }
                }
                buffer = items.into_iter();
            }
        })))
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, LogError> {
        let rows = self.query("SELECT size, note FROM civex_log_checkpoints ORDER BY size", vec![])?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get(1))).collect())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, LogError> {
        let rows = self.query(
            "SELECT size, note FROM civex_log_checkpoints ORDER BY size DESC LIMIT 1",
            vec![],
        )?;
        Ok(rows.first().map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
    }
}

/// How one consent stands, from its row.
fn usage(row: &tokio_postgres::Row) -> Usage {
    Usage {
        uses: row.get::<_, i64>(1) as u64,
        max_uses: row.get::<_, i64>(2) as u64,
        withdrawn: row.get::<_, Option<i64>>(3).is_some(),
        counted_through: 0,
    }
}

/// The right edge of the tree as its row keeps it: the subtree roots, concatenated.
fn frontier(size: u64, bytes: &[u8]) -> Result<Frontier, String> {
    let roots = bytes
        .chunks(32)
        .map(|c| c.try_into().map_err(|_| ()))
        .collect::<Result<Vec<Hash>, ()>>();
    roots
        .ok()
        .and_then(|roots| Frontier::from_roots(size, roots))
        .ok_or_else(|| format!("the stored right edge does not fit a tree of {size}"))
}

/// The hash tiles `nodes` grow, each with its rows as they will be: the
/// stored right-edge tiles (`edges`) extended.
fn grown_tiles(nodes: &[(u32, u64, Hash)], edges: &HashMap<(u32, u64), Vec<u8>>) -> BTreeMap<(u32, u64), Vec<u8>> {
    let mut tiles: BTreeMap<(u32, u64), Vec<u8>> = BTreeMap::new();
    for (level, index, hash) in nodes.iter().filter(|(level, ..)| level.is_multiple_of(TILE_HEIGHT)) {
        let key = (level / TILE_HEIGHT, index / TILE);
        tiles
            .entry(key)
            .or_insert_with(|| edges.get(&key).cloned().unwrap_or_default())
            .extend_from_slice(hash);
    }
    tiles
}

/// Runs a transaction on the engine's runtime that stops halfway for
/// `middle` to run on this thread (the writer's, which the lay-out and the
/// signing belong to): `first` reads and sends what `middle` needs, then
/// waits for its answer and writes.
fn halfway<R, A, T, F, Fut>(db: &Db, first: F, middle: impl FnOnce(R) -> A) -> Result<T, LogError>
where
    R: Send + 'static,
    A: Send + 'static,
    T: Send + 'static,
    F: FnOnce(Pool, std::sync::mpsc::SyncSender<R>, tokio::sync::oneshot::Receiver<A>) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let (reads_tx, reads_rx) = std::sync::mpsc::sync_channel(1);
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let transaction = first(db.pool.clone(), reads_tx, answer_rx);
    db.handle().spawn(async move {
        let _ = done_tx.send(transaction.await);
    });
    // The transaction either sends its reads or ends (with an error, or with nothing to do).
    if let Ok(reads) = reads_rx.recv() {
        let _ = answer_tx.send(middle(reads));
    }
    done_rx
        .recv()
        .unwrap_or_else(|_| Err(failed("the database runtime stopped")))
        .map_err(LogError::Unavailable)
}

/// Checks that an `UPDATE` changed exactly one row.
fn one_row(changed: u64, what: &str) -> Result<(), String> {
    if changed == 1 {
        Ok(())
    } else {
        Err(format!("{what} changed under the log's lock"))
    }
}

impl SharedLog for PgLog {
    fn sequence(
        &self,
        consents: &[String],
        lay_out: &mut dyn FnMut(&Head, &HashMap<String, Usage>) -> Layout,
    ) -> Result<Head, LogError> {
        let consents = consents.to_vec();
        halfway(
            &self.db,
            |pool, reads, layout| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                let (head_statement, usage_statement) = futures::try_join!(
                    tx.prepare_cached("SELECT next, last_time FROM civex_log_head WHERE id = 1 FOR UPDATE"),
                    tx.prepare_cached(
                        "SELECT id, uses, max_uses, withdrawn_at FROM civex_consents WHERE id = ANY($1) ORDER BY id FOR UPDATE"
                    ),
                )
                .map_err(failed)?;
                // Pipelined, and run in this order: the head's lock first.
                let ids: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&consents];
                let (head, rows) =
                    futures::try_join!(tx.query_one(&head_statement, &[]), tx.query(&usage_statement, &ids),)
                        .map_err(failed)?;
                let head = Head {
                    next: head.get::<_, i64>(0) as u64,
                    last_time: from_nanos(head.get(1)),
                };
                let usage = rows.iter().map(|r| (r.get::<_, String>(0), usage(r))).collect();
                reads.send((head, usage)).map_err(|_| failed("the writer went away"))?;
                let layout: Layout = layout.await.map_err(|_| failed("the writer went away"))?;
                if layout.leaves.is_empty() {
                    tx.commit().await.map_err(failed)?;
                    return Ok(head);
                }
                let (insert, advance, count, withdraw) = futures::try_join!(
                    tx.prepare_cached("INSERT INTO civex_log_batches (start, count, leaves) VALUES ($1, $2, $3)"),
                    tx.prepare_cached("UPDATE civex_log_head SET next = $1, last_time = $2 WHERE id = 1"),
                    tx.prepare_cached(
                        "UPDATE civex_consents SET uses = uses + $2 WHERE id = $1 AND withdrawn_at IS NULL \
                         AND (max_uses = 0 OR uses + $2 <= max_uses)"
                    ),
                    tx.prepare_cached(
                        "UPDATE civex_consents SET withdrawn_at = $2 WHERE id = $1 AND withdrawn_at IS NULL"
                    ),
                )
                .map_err(failed)?;
                let start = head.next as i64;
                let n = layout.leaves.len() as i64;
                let leaves = frame(&layout.leaves);
                let last_time = nanos(layout.last_time.unwrap_or(head.last_time));
                let (next, batch_count) = (start + n, n as i32);
                let uses: Vec<(String, i64)> = layout.uses.into_iter().map(|(id, n)| (id, n as i64)).collect();
                let withdrawals: Vec<(String, i64)> =
                    layout.withdrawals.into_iter().map(|(id, at)| (id, nanos(at))).collect();
                let stored = async {
                    tx.execute(&insert, &[&start, &batch_count, &leaves])
                        .await
                        .map_err(failed)?;
                    let advanced = tx.execute(&advance, &[&next, &last_time]).await.map_err(failed)?;
                    one_row(advanced, "the log's head")
                };
                let counted = futures::future::try_join_all(uses.iter().map(|(id, n)| async {
                    one_row(tx.execute(&count, &[id, n]).await.map_err(failed)?, "a consent's uses")
                }));
                let withdrawn = futures::future::try_join_all(
                    withdrawals
                        .iter()
                        .map(|(id, at)| async { tx.execute(&withdraw, &[id, at]).await.map_err(failed) }),
                );
                futures::try_join!(stored, counted, withdrawn)?;
                tx.commit().await.map_err(failed)?;
                Ok(head)
            },
            |(head, usage): (Head, HashMap<String, Usage>)| lay_out(&head, &usage),
        )
    }

    fn integrate_tree(
        &self,
        wait: bool,
        at_most: u64,
        work: &mut dyn FnMut(&Frontier, &[Vec<u8>]) -> Integration,
    ) -> Result<Integrated, LogError> {
        let lock = if wait {
            "SELECT size, frontier FROM civex_log_tree WHERE id = 1 FOR UPDATE"
        } else {
            "SELECT size, frontier FROM civex_log_tree WHERE id = 1 FOR UPDATE NOWAIT"
        };
        halfway(
            &self.db,
            move |pool, reads, answer| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                let tree = match tx.query_one(lock, &[]).await {
                    Ok(row) => row,
                    Err(e) if e.code().map(|c| c.code()) == Some(LOCK_NOT_AVAILABLE) => return Ok(Integrated::Busy),
                    Err(e) => return Err(failed(e)),
                };
                let size = tree.get::<_, i64>(0) as u64;
                let edge = frontier(size, tree.get(1))?;
                let next = tx
                    .query_one("SELECT next FROM civex_log_head WHERE id = 1", &[])
                    .await
                    .map_err(failed)?
                    .get::<_, i64>(0) as u64;
                if next <= size {
                    tx.commit().await.map_err(failed)?;
                    return Ok(Integrated::Current { size });
                }
                let leaves = unintegrated(&tx, size, at_most).await?;
                let edges = right_edge(&tx, size).await?;
                reads
                    .send((edge, leaves))
                    .map_err(|_| failed("the integrator went away"))?;
                let done: Integration = answer.await.map_err(|_| failed("the integrator went away"))?;
                let grown = done.frontier.size();
                for ((level, index), hashes) in grown_tiles(&done.nodes, &edges) {
                    let (level, index) = (level as i32, index as i64);
                    let sql = if edges.contains_key(&(level as u32, index as u64)) {
                        "UPDATE civex_log_tiles SET hashes = $3 WHERE level = $1 AND idx = $2"
                    } else {
                        "INSERT INTO civex_log_tiles (level, idx, hashes) VALUES ($1, $2, $3)"
                    };
                    tx.execute(sql, &[&level, &index, &hashes]).await.map_err(failed)?;
                }
                let roots: Vec<u8> = done.frontier.roots().iter().flatten().copied().collect();
                let grown_i = grown as i64;
                tx.execute(
                    "INSERT INTO civex_log_checkpoints (size, note) VALUES ($1, $2)",
                    &[&grown_i, &done.checkpoint],
                )
                .await
                .map_err(failed)?;
                tx.execute(
                    "UPDATE civex_log_tree SET size = $1, frontier = $2 WHERE id = 1",
                    &[&grown_i, &roots],
                )
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(Integrated::Grew {
                    size: grown,
                    more: grown < next,
                })
            },
            |(edge, leaves): (Frontier, Vec<Vec<u8>>)| work(&edge, &leaves),
        )
    }
}

/// The sequenced records from `size` on, whole batches, about `at_most` of them.
async fn unintegrated(tx: &impl GenericClient, size: u64, at_most: u64) -> Result<Vec<Vec<u8>>, String> {
    let at = size as i64;
    let first: Option<i64> = tx
        .query_one("SELECT MAX(start) FROM civex_log_batches WHERE start <= $1", &[&at])
        .await
        .map_err(failed)?
        .get(0);
    let first = first.ok_or_else(|| format!("no stored batch holds record {size}"))?;
    let limit = (size + at_most) as i64;
    let rows = tx
        .query(
            "SELECT start, count, leaves FROM civex_log_batches WHERE start >= $1 AND start < $2 ORDER BY start",
            &[&first, &limit],
        )
        .await
        .map_err(failed)?;
    let mut leaves = Vec::new();
    let mut expected = first as u64;
    for row in &rows {
        let batch = stored(row)?;
        if batch.start != expected {
            return Err(format!("records {expected}..{} are missing", batch.start));
        }
        expected = batch.start + batch.leaves.len() as u64;
        let skip = size.saturating_sub(batch.start) as usize;
        leaves.extend(batch.leaves.into_iter().skip(skip));
    }
    Ok(leaves)
}

/// The partial tile at the right edge of each tile level of a tree of `size`.
async fn right_edge(tx: &impl GenericClient, size: u64) -> Result<HashMap<(u32, u64), Vec<u8>>, String> {
    let mut edges = HashMap::new();
    let mut level = 0u32;
    while size >> (level * TILE_HEIGHT) > 0 {
        let count = size >> (level * TILE_HEIGHT);
        let (tile, width) = (count / TILE, count % TILE);
        if width > 0 {
            let (l, i) = (level as i32, tile as i64);
            let row = tx
                .query_opt(
                    "SELECT hashes FROM civex_log_tiles WHERE level = $1 AND idx = $2",
                    &[&l, &i],
                )
                .await
                .map_err(failed)?;
            let hashes: Vec<u8> = row.map(|r| r.get(0)).unwrap_or_default();
            if hashes.len() as u64 != width * 32 {
                return Err(format!(
                    "tile {level}/{tile} holds {} hashes where the tree has {width}",
                    hashes.len() / 32
                ));
            }
            edges.insert((level, tile), hashes);
        }
        level += 1;
    }
    Ok(edges)
}

/// The search indexes and refusal totals of a deployment's log. Filing is
/// one transaction under the index head's lock, which holds the size filed
/// to: entries below it are not filed twice, and the size and totals only
/// move forward, whichever gateway files.
pub struct PgIndex(pub(crate) Db);

#[derive(Serialize, Deserialize)]
struct Refusal {
    agency: String,
    reason: String,
    count: u64,
}

fn key_parts(key: &IndexKey) -> (i16, &str) {
    match key {
        IndexKey::Citizen(c) => (0, c.as_str()),
        IndexKey::Agency(a) => (1, a.as_str()),
    }
}

impl IndexStore for PgIndex {
    fn indexed_size(&self) -> Result<u64, LogError> {
        let rows = self
            .0
            .query_blocking("SELECT size FROM civex_index_head WHERE id = 1", vec![])
            .map_err(unavailable)?;
        let row = rows
            .first()
            .ok_or_else(|| unavailable(failed("the index head's row is missing")))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn add(&self, entries: &[(IndexKey, u64)], refusals: &[RefusalCount], size: u64) -> Result<(), LogError> {
        let mut kinds = Vec::with_capacity(entries.len());
        let mut keys = Vec::with_capacity(entries.len());
        let mut indices = Vec::with_capacity(entries.len());
        for (key, index) in entries {
            let (kind, key) = key_parts(key);
            kinds.push(kind);
            keys.push(key.to_owned());
            indices.push(*index as i64);
        }
        let totals: Vec<Refusal> = refusals
            .iter()
            .map(|r| Refusal {
                agency: r.agency.clone(),
                reason: r.reason.clone(),
                count: r.count,
            })
            .collect();
        let totals = serde_json::to_string(&totals).map_err(LogError::storage)?;
        let size = size as i64;
        self.0
            .block(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                let filed: i64 = tx
                    .query_one("SELECT size FROM civex_index_head WHERE id = 1 FOR UPDATE", &[])
                    .await
                    .map_err(failed)?
                    .get(0);
                if filed >= size {
                    return tx.commit().await.map_err(failed);
                }
                let insert = tx
                    .prepare_cached(
                        "INSERT INTO civex_index (kind, key, idx) \
                         SELECT kind, key, idx FROM UNNEST($1::SMALLINT[], $2::TEXT[], $3::BIGINT[]) AS e(kind, key, idx) \
                         WHERE idx >= $4",
                    )
                    .await
                    .map_err(failed)?;
                tx.execute(&insert, &[&kinds, &keys, &indices, &filed])
                    .await
                    .map_err(failed)?;
                tx.execute(
                    "UPDATE civex_index_head SET size = $1, refusals = $2 WHERE id = 1",
                    &[&size, &totals],
                )
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)
            })
            .map_err(unavailable)
    }

    fn indexed(&self, key: &IndexKey, from: u64) -> Scan<'_, u64> {
        let (kind, key) = key_parts(key);
        let key = key.to_owned();
        let mut next = from as i64;
        let mut buffer = Vec::new().into_iter();
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            loop {
                if let Some(i) = buffer.next() {
                    return Some(Ok(i));
                }
                if done {
                    return None;
                }
                let page: Result<Vec<i64>, String> = self
                    .0
                    .query_blocking(
                        "SELECT idx FROM civex_index WHERE kind = $1 AND key = $2 AND idx >= $3 ORDER BY idx LIMIT 1000",
                        vec![Box::new(kind), Box::new(key.clone()), Box::new(next)],
                    )
                    .map(|rows| rows.iter().map(|r| r.get(0)).collect());
                match page {
                    Ok(page) => {
                        done = page.len() < 1000;
                        if let Some(last) = page.last() {
                            next = last + 1;
                        }
                        buffer = page.into_iter().map(|i| i as u64).collect::<Vec<_>>().into_iter();
                    }
                    Err(e) => {
                        done = true;
                        return Some(Err(unavailable(e)));
                    }
                }
            }
        }))
    }

    fn refusals(&self) -> Result<Vec<RefusalCount>, LogError> {
        let rows = self
            .0
            .query_blocking("SELECT refusals FROM civex_index_head WHERE id = 1", vec![])
            .map_err(unavailable)?;
        let text: String = rows
            .first()
            .ok_or_else(|| unavailable(failed("the index head's row is missing")))?
            .get(0);
        let totals: Vec<Refusal> = serde_json::from_str(&text).map_err(LogError::storage)?;
        Ok(totals
            .into_iter()
            .map(|r| RefusalCount {
                agency: r.agency,
                reason: r.reason,
                count: r.count,
            })
            .collect())
    }

    fn clear(&self) -> Result<(), LogError> {
        self.0
            .block(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                tx.execute("SELECT size FROM civex_index_head WHERE id = 1 FOR UPDATE", &[])
                    .await
                    .map_err(failed)?;
                tx.execute("DELETE FROM civex_index", &[]).await.map_err(failed)?;
                tx.execute(
                    "UPDATE civex_index_head SET size = 0, refusals = '[]' WHERE id = 1",
                    &[],
                )
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)
            })
            .map_err(unavailable)
    }

    fn flush(&self) -> Result<(), LogError> {
        // Every add is committed.
        Ok(())
    }
}
