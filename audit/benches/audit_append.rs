//! Audit append throughput: durable group commit with many writers waiting
//! at once (one journal write and one fdatasync per batch), against one
//! fsync per record (a single writer waiting for each).
//!
//! `cargo bench -p civex-audit --bench audit_append [-- RECORDS CONCURRENCY]`;
//! figures go to stdout and `target/bench/audit_append.json`.

use std::{sync::Arc, time::Instant};

use std::collections::HashMap;

use civex_audit::{
    AuditLog, Entry, LogEngine, Usage, UseLedger, WriterConfig, clock::SystemClock, embedded::SledIndex, keys::Signer,
    tiles::TileLog,
};
use civex_proto::v1::{AuditRecord, Decision};

/// The records carry no consent uses, so there is nothing to re-check or flush.
struct NoUses;

impl UseLedger for NoUses {
    fn usage(&self, _: &str) -> Result<Usage, String> {
        Ok(Usage::default())
    }

    fn apply(
        &self,
        _: &HashMap<String, u64>,
        _: &HashMap<String, std::time::SystemTime>,
        _: u64,
    ) -> Result<(), String> {
        Ok(())
    }

    fn applied(&self) -> Result<u64, String> {
        Ok(0)
    }

    fn flush(&self) -> Result<(), String> {
        Ok(())
    }
}

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        agency: "qujing-psb".into(),
        operator: format!("staff-{:04}", i % 500),
        action: "ExchangeService/Query".into(),
        citizen_ref: format!("{:064x}", i * 7919),
        scopes: vec!["ps.hukou.division".into(), "housing.owned_residence.division".into()],
        purpose: "hukou.settlement".into(),
        consent_id: format!("{:032x}", i),
        decision: Decision::Allow as i32,
        request_id: format!("req-{i}"),
        ..Default::default()
    }
}

/// Appends `total` records from `writers` concurrent tasks; returns records per second.
async fn run(total: u64, writers: u64) -> f64 {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let signer = Arc::new(Signer::load_or_create(dir.path(), "civex/bench").expect("key"));
    let config = WriterConfig {
        checkpoint_every: 10_000,
        checkpoint_interval: std::time::Duration::from_secs(10),
        durable: true,
    };
    let store = Arc::new(TileLog::open(dir.path()).expect("store"));
    let index = Arc::new(SledIndex::open(dir.path()).expect("index"));
    let engine = LogEngine::Local {
        store,
        ledger: Arc::new(NoUses),
    };
    let (log, _) = AuditLog::open(engine, index, signer, Arc::new(SystemClock), config).expect("audit log");
    let log = Arc::new(log);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in (w..total).step_by(writers as usize) {
                    log.append(Entry {
                        record: record(i),
                        ..Entry::default()
                    })
                    .await
                    .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    assert_eq!(log.size(), total);
    log.close().await;
    rate
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(50_000);
    let concurrency = args.get(1).copied().unwrap_or(256);
    let sequential_total = (total / 20).max(500);
    let one_flush_each = run(sequential_total, 1).await;
    let group = run(total, concurrency).await;
    println!(
        "audit append, durable, one flush per record:   {one_flush_each:>9.0} records/s ({sequential_total} records, 1 writer)"
    );
    println!(
        "audit append, durable, group commit:           {group:>9.0} records/s ({total} records, {concurrency} writers)"
    );
    println!("group commit speed-up: {:.1}x", group / one_flush_each);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench");
    let _ = std::fs::create_dir_all(&out);
    let json = format!(
        "{{\"one_flush_per_record\":{one_flush_each:.0},\"group_commit\":{group:.0},\"records\":{total},\"writers\":{concurrency}}}\n"
    );
    let _ = std::fs::write(out.join("audit_append.json"), json);
}
