//! The audit log on its embedded engine, through the crate's public
//! interface: tiles and journal on disk, torn tails, consent uses counted in
//! log order, and searches that do not wait for the index.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    ops::ControlFlow,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use civex_audit::{
    AuditLog, Entry, IndexStore, LogEngine, LogStore, Overruled, Usage, UseLedger, WITHDRAWAL_ACTION, WriterConfig,
    checkpoint,
    clock::SystemClock,
    embedded::SledIndex,
    keys::{Signer, Verifier},
    merkle::{self, Frontier},
    search::Filter,
    store::{Batch, IndexKey, RefusalCount, Scan, StoreError},
    tiles::{LOG_DIR, TileLog, tile_path},
    verify,
};
use civex_proto::v1::{AuditRecord, Decision};
use prost::Message;

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        agency: format!("agency-{}", i % 3),
        action: "ExchangeService/Query".into(),
        citizen_ref: format!("{:064x}", i % 7),
        decision: if i.is_multiple_of(5) {
            Decision::Deny
        } else {
            Decision::Allow
        } as i32,
        reason: if i.is_multiple_of(5) {
            "CONSENT_REQUIRED".into()
        } else {
            String::new()
        },
        request_id: format!("req-{i}"),
        ..Default::default()
    }
}

fn signer(dir: &Path) -> Arc<Signer> {
    Arc::new(Signer::load_or_create(dir, "civex/test").unwrap())
}

fn verifier(signer: &Signer) -> Verifier {
    Verifier::parse(&signer.verifier_key()).unwrap()
}

/// Appends records `from..to` as one batch, as the writer lays it out.
fn append(log: &TileLog, frontier: &mut Frontier, to: u64, checkpoint_by: Option<&Signer>) {
    let mut batch = Batch {
        start: frontier.size(),
        ..Batch::default()
    };
    for i in frontier.size()..to {
        let leaf = record(i).encode_to_vec();
        frontier.push(merkle::leaf_hash(&leaf), |level, index, hash| {
            batch.nodes.push((level, index, *hash))
        });
        batch.leaves.push(leaf);
    }
    batch.size = to;
    batch.checkpoint = checkpoint_by.map(|s| checkpoint::sign(s, to, &frontier.root()).note);
    log.append(&batch, true).unwrap();
}

fn journal_segments(data: &Path) -> Vec<std::path::PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(data.join(LOG_DIR).join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    segments
}

#[test]
fn tiles_are_laid_out_as_the_spec_names_them_and_proofs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    let log = TileLog::open(dir.path()).unwrap().with_segment_bytes(16 * 1024);
    let mut frontier = Frontier::default();
    let mut roots = Vec::new();
    for to in [1, 100, 256, 257, 700, 1000] {
        append(&log, &mut frontier, to, Some(&signer));
        roots.push((to, frontier.root()));
        log.integrate().unwrap();
    }
    let logdir = dir.path().join(LOG_DIR);
    for path in [
        tile_path(None, 0, 256),
        tile_path(None, 2, 256),
        tile_path(None, 3, 232),
        tile_path(Some(0), 3, 232),
        tile_path(Some(1), 0, 3),
        "checkpoint".into(),
    ] {
        assert!(logdir.join(&path).is_file(), "{path} is missing");
    }
    // Older widths are gone once a tile grows; full tiles hold 256 hashes.
    assert!(!logdir.join(tile_path(None, 0, 100)).exists());
    assert!(!logdir.join(tile_path(Some(0), 2, 188)).exists());
    assert_eq!(
        std::fs::read(logdir.join(tile_path(Some(0), 1, 256))).unwrap().len(),
        256 * 32
    );
    // Segments the tiles hold whole are removed.
    assert!(
        journal_segments(dir.path()).len() < 3,
        "{:?}",
        journal_segments(dir.path())
    );

    drop(log);
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(log.size().unwrap(), 1000);
    let nodes = &mut |level, index| log.node(level, index).map(|n| n.unwrap());
    for (size, root) in &roots {
        assert_eq!(merkle::root(nodes, *size).unwrap(), *root, "root at {size}");
    }
    let (full_root, proof) = (
        roots.last().unwrap().1,
        merkle::inclusion_proof(nodes, 517, 1000).unwrap().unwrap(),
    );
    let leaf = merkle::leaf_hash(&log.leaf(517).unwrap().unwrap());
    merkle::verify_inclusion(&leaf, 517, 1000, &proof, &full_root).unwrap();
    assert_eq!(log.leaf(999).unwrap().unwrap(), record(999).encode_to_vec());
    assert_eq!(log.leaf(1000).unwrap(), None);
    let verified = verify(&log, &verifier(&signer)).unwrap();
    assert_eq!((verified.size, verified.checkpoints), (1000, roots.len()));
}

#[test]
fn a_journal_cut_at_every_byte_of_its_last_batch_recovers_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    let verifier = verifier(&signer);
    let log = TileLog::open(dir.path()).unwrap();
    let mut frontier = Frontier::default();
    append(&log, &mut frontier, 300, Some(&signer));
    log.integrate().unwrap();
    append(&log, &mut frontier, 310, Some(&signer));
    let [segment] = journal_segments(dir.path()).try_into().unwrap();
    let before = std::fs::metadata(&segment).unwrap().len();
    append(&log, &mut frontier, 317, None);
    drop(log);
    let whole = std::fs::read(&segment).unwrap();
    assert!(whole.len() as u64 > before);
    for cut in before..whole.len() as u64 {
        std::fs::write(&segment, &whole[..cut as usize]).unwrap();
        let log = TileLog::open(dir.path()).unwrap();
        assert_eq!(log.size().unwrap(), 310, "cut at {cut}");
        let verified = verify(&log, &verifier).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(verified.latest.unwrap().size, 310);
        drop(log);
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            before,
            "the torn tail is cut off"
        );
    }
    // A flipped bit in the last frame is found by its checksum.
    let mut flipped = whole.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    std::fs::write(&segment, &flipped).unwrap();
    assert_eq!(TileLog::open(dir.path()).unwrap().size().unwrap(), 310);
    // Whole, everything is there, and the log goes on from it.
    std::fs::write(&segment, &whole).unwrap();
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(log.size().unwrap(), 317);
    let mut frontier = Frontier::load(&mut |l, i| log.node(l, i).map(|n| n.unwrap()), 317).unwrap();
    append(&log, &mut frontier, 400, Some(&signer));
    assert_eq!(verify(&log, &verifier).unwrap().size, 400);
}

#[test]
fn the_log_is_one_process_s() {
    let dir = tempfile::tempdir().unwrap();
    let _open = TileLog::open(dir.path()).unwrap();
    let err = TileLog::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

/// Consents in memory, with what was "durable" kept apart so a test can
/// lose the rest, as a crash does.
#[derive(Default)]
struct Ledger {
    max_uses: HashMap<String, u64>,
    state: Mutex<(HashMap<String, Usage>, u64)>,
}

impl UseLedger for Ledger {
    fn usage(&self, id: &str) -> Result<Usage, String> {
        let state = self.state.lock().unwrap();
        let max_uses = *self.max_uses.get(id).ok_or("no such consent")?;
        Ok(Usage {
            max_uses,
            ..state.0.get(id).copied().unwrap_or_default()
        })
    }

    fn apply(
        &self,
        uses: &HashMap<String, u64>,
        withdrawals: &HashMap<String, SystemTime>,
        size: u64,
    ) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        for (id, n) in uses {
            state.0.entry(id.clone()).or_default().uses += n;
        }
        for id in withdrawals.keys() {
            state.0.entry(id.clone()).or_default().withdrawn = true;
        }
        state.1 = size;
        Ok(())
    }

    fn applied(&self) -> Result<u64, String> {
        Ok(self.state.lock().unwrap().1)
    }

    fn flush(&self) -> Result<(), String> {
        Ok(())
    }
}

fn config() -> WriterConfig {
    WriterConfig {
        checkpoint_every: 50,
        checkpoint_interval: Duration::from_secs(3600),
        durable: true,
    }
}

fn open(dir: &Path, index: Arc<dyn IndexStore>, ledger: Arc<Ledger>) -> AuditLog {
    let store = Arc::new(TileLog::open(dir).unwrap());
    AuditLog::open(
        LogEngine::Local { store, ledger },
        index,
        signer(dir),
        Arc::new(SystemClock),
        config(),
    )
    .unwrap()
    .0
}

fn using(consent: &str, i: u64) -> Entry {
    Entry {
        record: AuditRecord {
            decision: Decision::Allow as i32,
            consent_id: consent.into(),
            ..record(i)
        },
        consent_uses: vec![consent.into()],
        ..Entry::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_are_counted_in_log_order_and_replayed_into_a_ledger_that_lost_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger {
        max_uses: HashMap::from([("c3".into(), 3), ("free".into(), 0)]),
        ..Ledger::default()
    });
    let log = Arc::new(open(
        dir.path(),
        Arc::new(SledIndex::open(dir.path()).unwrap()),
        ledger.clone(),
    ));
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(using(if i % 2 == 0 { "c3" } else { "free" }, i)).await })
        })
        .collect();
    let mut outcomes: HashMap<Option<Overruled>, usize> = HashMap::new();
    for call in calls {
        *outcomes.entry(call.await.unwrap().unwrap().overruled).or_default() += 1;
    }
    assert_eq!(
        outcomes.get(&None),
        Some(&23),
        "3 uses of c3 and 20 of the free consent"
    );
    assert_eq!(outcomes.get(&Some(Overruled::ConsentExhausted)), Some(&17));
    assert_eq!(ledger.usage("c3").unwrap().uses, 3);

    // A withdrawal in the log refuses every use after it.
    let withdrawal = Entry {
        record: AuditRecord {
            action: WITHDRAWAL_ACTION.into(),
            consent_id: "free".into(),
            decision: Decision::Allow as i32,
            ..AuditRecord::default()
        },
        withdrawal: Some("free".into()),
        ..Entry::default()
    };
    assert_eq!(log.append(withdrawal).await.unwrap().overruled, None);
    assert_eq!(
        log.append(using("free", 99)).await.unwrap().overruled,
        Some(Overruled::ConsentRevoked)
    );
    log.close().await;
    drop(log);

    // The records say which consents they used: a ledger that lost
    // everything is brought up to date from the log.
    let mut tally: HashMap<String, u64> = HashMap::new();
    TileLog::open(dir.path())
        .unwrap()
        .scan_leaves(&mut |_, leaf| {
            let r = AuditRecord::decode(leaf).unwrap();
            if r.decision == Decision::Allow as i32 {
                for id in r.consent_uses {
                    *tally.entry(id).or_default() += 1;
                }
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(tally, HashMap::from([("c3".into(), 3), ("free".into(), 20)]));
    let fresh = Arc::new(Ledger {
        max_uses: ledger.max_uses.clone(),
        ..Ledger::default()
    });
    let log = open(
        dir.path(),
        Arc::new(SledIndex::open(dir.path()).unwrap()),
        fresh.clone(),
    );
    assert_eq!(fresh.usage("c3").unwrap().uses, 3);
    let free = fresh.usage("free").unwrap();
    assert_eq!((free.uses, free.withdrawn), (20, true));
    assert_eq!(fresh.applied().unwrap(), 42);
    log.close().await;
}

/// An index that never files anything: every search must read the log.
struct Stalled;

impl IndexStore for Stalled {
    fn indexed_size(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn add(&self, _: &[(IndexKey, u64)], _: &[RefusalCount], _: u64) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("stalled".into()))
    }
    fn indexed(&self, _: &IndexKey, _: u64) -> Scan<'_, u64> {
        Box::new(std::iter::empty())
    }
    fn refusals(&self) -> Result<Vec<RefusalCount>, StoreError> {
        Ok(Vec::new())
    }
    fn clear(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_finds_records_the_index_has_not_filed_and_reindex_files_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::default());
    let log = open(dir.path(), Arc::new(Stalled), ledger.clone());
    for i in 0..70 {
        log.append(Entry {
            record: record(i),
            ..Entry::default()
        })
        .await
        .unwrap();
    }
    let citizen = Filter {
        citizen_ref: Some(format!("{:064x}", 3)),
        ..Filter::default()
    };
    let expected: Vec<u64> = (0..70).filter(|i| i % 7 == 3).collect();
    let found = |log: &AuditLog| -> Vec<u64> {
        log.search(&citizen, 100, None)
            .unwrap()
            .entries
            .iter()
            .map(|e| e.index)
            .collect()
    };
    assert_eq!(found(&log), expected);
    let refused: u64 = log.report().unwrap().iter().map(|r| r.count).sum();
    assert_eq!(refused, 14);
    log.close().await;
    drop(log);

    let index = Arc::new(SledIndex::open(dir.path()).unwrap());
    let store = TileLog::open(dir.path()).unwrap();
    assert_eq!(civex_audit::index::reindex(&store, index.clone()).unwrap(), 70);
    assert_eq!(index.indexed_size().unwrap(), 70);
    let filed: Vec<u64> = index
        .indexed(&IndexKey::Citizen(format!("{:064x}", 3)), 0)
        .map(Result::unwrap)
        .collect();
    assert_eq!(filed, expected);
    assert_eq!(index.refusals().unwrap().iter().map(|r| r.count).sum::<u64>(), 14);
    drop(store);
    let log = open(dir.path(), index, ledger);
    assert_eq!(found(&log), expected);
    log.close().await;
}

#[test]
fn a_log_in_the_older_sled_layout_moves_into_tiles_and_its_checkpoints_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    {
        let db = sled::open(dir.path().join(civex_audit::embedded::OLD_LOG_DIR)).unwrap();
        let tree = db.open_tree("audit").unwrap();
        let mut frontier = Frontier::default();
        for i in 0..600u64 {
            let leaf = record(i).encode_to_vec();
            frontier.push(merkle::leaf_hash(&leaf), |_, _, _| {});
            let mut key = vec![b'r'];
            key.extend_from_slice(&i.to_be_bytes());
            tree.insert(key, leaf).unwrap();
            if [100, 599].contains(&(i + 1)) {
                let mut key = vec![b'k'];
                key.extend_from_slice(&(i + 1).to_be_bytes());
                tree.insert(key, checkpoint::sign(&signer, i + 1, &frontier.root()).note.as_bytes())
                    .unwrap();
            }
        }
        db.flush().unwrap();
    }
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(
        civex_audit::embedded::migrate_sled_log(dir.path(), &log).unwrap(),
        Some(600)
    );
    let verified = verify(&log, &verifier(&signer)).unwrap();
    assert_eq!((verified.size, verified.checkpoints), (600, 2));
    assert_eq!(log.leaf(321).unwrap().unwrap(), record(321).encode_to_vec());
    assert!(dir.path().join(civex_audit::embedded::MIGRATED_LOG_DIR).is_dir());
    // Done once: nothing is left to move.
    assert_eq!(civex_audit::embedded::migrate_sled_log(dir.path(), &log).unwrap(), None);
    drop(log);
    assert_eq!(TileLog::open(dir.path()).unwrap().size().unwrap(), 600);
}
