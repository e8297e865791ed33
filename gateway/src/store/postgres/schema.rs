//! The tables of a deployment, created and migrated at start under an
//! advisory lock, so that gateways starting together migrate once.
//!
//! | table | holds |
//! |---|---|
//! | `civex_schema` | the schema version |
//! | `civex_changes` | a counter every change of agencies or revocations moves, which gateways poll |
//! | `civex_agencies` | code → the `Agency`, JSON |
//! | `civex_certificates` | issued serial → agency, end of validity |
//! | `civex_revocations` | revoked serial, time, reason (the first revocation is kept) |
//! | `civex_consents` | the encoded `Consent`, its citizen, `max_uses`, `uses` and `withdrawn_at` (counted by the log's transactions) |
//! | `civex_log_head` | the coordination row: the next index and the last record's time |
//! | `civex_log_batches` | sequenced records, one row per batch: start, count, framed leaves |
//! | `civex_log_tree` | the integrated tree: its size and right edge |
//! | `civex_log_tiles` | hash tiles of 256 (tile level = tree level / 8), growing in place |
//! | `civex_log_checkpoints` | every signed checkpoint, by tree size |
//! | `civex_log_probe` | a row a recovering gateway writes to prove the database writable |
//! | `civex_index`, `civex_index_head` | search index entries; the size they are filed to and the refusal totals |
//! | `civex_registries`, `civex_registry_records` | each department's current registry version; its records, JSON |
//! | `civex_gateways` | when each gateway last published its calls per second per agency, and those calls (JSON) |
//! | `civex_registry_counter` | the last version given to a registry import |
//! | `civex_oversight_head` | the log size the alert rules have run through |
//! | `civex_alerts` | each alert: the rules' finding (the encoded `Alert`), its key and opening time, and the auditors' state, case and note |
//! | `civex_watched` | the auditors' watch list: pseudonym → the encoded `WatchEntry` |
//! | `civex_cases` | each case, encoded, with its number of events (a case changes only from the count it was read at) |
//! | `civex_objections`, `civex_corrections` | each objection (JSON, with the citizen's ID and statement for the steward) by department and state; each correction sent, by recipient |
//! | `civex_commitments` | each commitment (JSON, with the citizen's ID for its check), its state, when it was settled, and until when a gateway has claimed its verification |

use deadpool_postgres::Pool;

use super::failed;

/// The advisory lock key the migrations run under ("civex" in ASCII).
const MIGRATION_LOCK: i64 = 0x63_69_76_65_78;

/// Each migration's statements, run in one transaction; the schema version
/// is the number of migrations applied.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE civex_changes (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
        "INSERT INTO civex_changes (id, version) VALUES (1, 0)",
        "CREATE TABLE civex_agencies (code TEXT PRIMARY KEY, body TEXT NOT NULL)",
        "CREATE TABLE civex_certificates (serial TEXT PRIMARY KEY, agency TEXT NOT NULL)",
        "CREATE TABLE civex_revocations (serial TEXT PRIMARY KEY, revoked_at BIGINT NOT NULL, reason TEXT NOT NULL)",
        "CREATE TABLE civex_consents (id TEXT PRIMARY KEY, citizen_id TEXT NOT NULL, body BYTEA NOT NULL, \
     max_uses BIGINT NOT NULL, uses BIGINT NOT NULL, withdrawn_at BIGINT)",
        "CREATE INDEX civex_consents_citizen ON civex_consents (citizen_id)",
        "CREATE TABLE civex_log_head (id INTEGER PRIMARY KEY, next BIGINT NOT NULL, last_time BIGINT NOT NULL)",
        "INSERT INTO civex_log_head (id, next, last_time) VALUES (1, 0, 0)",
        "CREATE TABLE civex_log_batches (start BIGINT PRIMARY KEY, count INTEGER NOT NULL, leaves BYTEA NOT NULL)",
        "CREATE TABLE civex_log_tree (id INTEGER PRIMARY KEY, size BIGINT NOT NULL, frontier BYTEA NOT NULL)",
        "INSERT INTO civex_log_tree (id, size, frontier) VALUES (1, 0, '')",
        "CREATE TABLE civex_log_tiles (level INTEGER NOT NULL, idx BIGINT NOT NULL, hashes BYTEA NOT NULL, \
     PRIMARY KEY (level, idx))",
        "CREATE TABLE civex_log_checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL)",
        "CREATE TABLE civex_log_probe (id INTEGER PRIMARY KEY, stamp BIGINT NOT NULL)",
        "INSERT INTO civex_log_probe (id, stamp) VALUES (1, 0)",
        "CREATE TABLE civex_index (kind SMALLINT NOT NULL, key TEXT NOT NULL, idx BIGINT NOT NULL, \
     PRIMARY KEY (kind, key, idx))",
        "CREATE TABLE civex_index_head (id INTEGER PRIMARY KEY, size BIGINT NOT NULL, refusals TEXT NOT NULL)",
        "INSERT INTO civex_index_head (id, size, refusals) VALUES (1, 0, '[]')",
        "CREATE TABLE civex_registries (department TEXT PRIMARY KEY, version BIGINT NOT NULL, records BIGINT NOT NULL)",
        "CREATE TABLE civex_registry_records (department TEXT NOT NULL, version BIGINT NOT NULL, \
     citizen_id TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (department, version, citizen_id))",
    ],
    &[
        "CREATE TABLE civex_gateways (gateway TEXT PRIMARY KEY, seen_at TIMESTAMP WITH TIME ZONE NOT NULL, \
         calls TEXT NOT NULL)",
        "CREATE TABLE civex_registry_counter (id INTEGER PRIMARY KEY, last BIGINT NOT NULL)",
        "INSERT INTO civex_registry_counter (id, last) SELECT 1, COALESCE(MAX(version), 0) FROM civex_registries",
    ],
    &[
        // The rules start where the log is: a deployment that had a log
        // before them is not flooded with alerts about its past.
        "CREATE TABLE civex_oversight_head (id INTEGER PRIMARY KEY, evaluated BIGINT NOT NULL)",
        "INSERT INTO civex_oversight_head (id, evaluated) SELECT 1, next FROM civex_log_head WHERE id = 1",
        "CREATE TABLE civex_alerts (id TEXT PRIMARY KEY, key TEXT NOT NULL, opened_at BIGINT NOT NULL, \
         finding BYTEA NOT NULL, state INTEGER NOT NULL, case_id TEXT NOT NULL, note TEXT NOT NULL)",
        "CREATE INDEX civex_alerts_opened ON civex_alerts (opened_at)",
        "CREATE TABLE civex_watched (citizen_ref TEXT PRIMARY KEY, body BYTEA NOT NULL)",
        "CREATE TABLE civex_cases (id TEXT PRIMARY KEY, events BIGINT NOT NULL, body BYTEA NOT NULL)",
    ],
    &[
        "ALTER TABLE civex_certificates ADD COLUMN not_after BIGINT",
        "CREATE INDEX civex_certificates_agency ON civex_certificates (agency)",
    ],
    &[
        "CREATE TABLE civex_commitments (id TEXT PRIMARY KEY, agency TEXT NOT NULL, citizen_ref TEXT NOT NULL, \
         recorded_at BIGINT NOT NULL, verify_after BIGINT NOT NULL, state INTEGER NOT NULL, settled_at BIGINT, \
         claimed_until BIGINT NOT NULL, body TEXT NOT NULL)",
        "CREATE INDEX civex_commitments_due ON civex_commitments (state, verify_after)",
        "CREATE INDEX civex_commitments_agency ON civex_commitments (agency, id)",
        "CREATE INDEX civex_commitments_citizen ON civex_commitments (citizen_ref, state)",
    ],
    &[
        "CREATE TABLE civex_objections (id TEXT PRIMARY KEY, department TEXT NOT NULL, state INTEGER NOT NULL, \
         opened_at BIGINT NOT NULL, body TEXT NOT NULL)",
        "CREATE INDEX civex_objections_department ON civex_objections (department, id)",
        "CREATE TABLE civex_corrections (agency TEXT NOT NULL, id TEXT NOT NULL, corrected_at BIGINT NOT NULL, \
         body TEXT NOT NULL, PRIMARY KEY (agency, id))",
    ],
];

/// SQLSTATE of a missing table.
const UNDEFINED_TABLE: &str = "42P01";

/// Creates or migrates the schema; a gateway whose binary is older than
/// the schema refuses to start.
pub(crate) async fn migrate(pool: &Pool) -> Result<(), String> {
    let mut client = pool.get().await.map_err(failed)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    let result = async {
        let version = match client.query_one("SELECT version FROM civex_schema", &[]).await {
            Ok(row) => row.get::<_, i32>(0),
            Err(e) if e.code().map(|c| c.code()) == Some(UNDEFINED_TABLE) => {
                client
                    .batch_execute(
                        "CREATE TABLE civex_schema (version INTEGER NOT NULL); \
                         INSERT INTO civex_schema (version) VALUES (0)",
                    )
                    .await
                    .map_err(failed)?;
                0
            }
            Err(e) => return Err(failed(e)),
        };
        let known = MIGRATIONS.len() as i32;
        if version > known {
            return Err(format!(
                "the database's schema is version {version}, newer than this gateway's {known}: upgrade the gateway"
            ));
        }
        for (n, statements) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = client.transaction().await.map_err(failed)?;
            for statement in *statements {
                tx.execute(*statement, &[]).await.map_err(failed)?;
            }
            let version = n as i32 + 1;
            tx.execute("UPDATE civex_schema SET version = $1", &[&version])
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            tracing::info!(version, "database schema migrated");
        }
        Ok(())
    }
    .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed);
    result.and(unlocked.map(drop))
}
