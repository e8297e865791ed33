//! The PostgreSQL engine: every piece of shared state of a deployment in
//! one PostgreSQL 15+ database, so that any number of gateways serve it
//! behind a TCP load balancer and keep nothing of their own but keys and
//! config (DESIGN §9).
//!
//! tokio-postgres with a deadpool pool, on a runtime of the engine's own:
//! the log's and the registries' traits block (they are called from the
//! audit threads and the import), and the pool's connections must outlive
//! whichever runtime first asked for them. Statements are prepared once
//! per connection (`prepare_cached`) and those of one step are pipelined.
//! The SQL is plain: no upserts, no catalogue introspection, nothing that
//! openGauss or KingbaseES would refuse. The schema is created and migrated
//! at start under an advisory lock ([`schema`]).
//!
//! # Layout
//! - [`schema`]: the tables and their migrations.
//! - [`state`]: agencies, certificates and revocations, consents.
//! - [`log`]: the audit log as a [`civex_audit::shared::SharedLog`], and its search indexes.
//! - [`registries`]: the departments' registries.
//! - [`oversight`]: alerts, the watch list and cases.
//! - [`commitments`]: notification-and-commitment records and their verification.
//! - [`corrections`]: objections and the corrections they sent.

pub mod commitments;
pub mod corrections;
pub mod log;
pub mod oversight;
pub mod registries;
pub mod schema;
pub mod state;

use std::{future::Future, str::FromStr, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls_pki_types::pem::PemObject;
use tokio_postgres::{NoTls, Row, config::SslMode, types::ToSql};

use super::{StoreError, Stores};

/// The URL's TLS root certificate parameter, as libpq names it: read here,
/// as tokio-postgres does not.
const ROOT_CERT: &str = "sslrootcert";

/// Connections per gateway at most.
const POOL_SIZE: usize = 16;

/// The runtime the engine's connections live on, shut down without
/// waiting when the last handle goes (a runtime may not be dropped inside another).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A pool of connections to the deployment's database.
#[derive(Clone)]
pub struct Db {
    pub(crate) pool: Pool,
    runtime: Arc<Runtime>,
}

/// One parameter of a statement run by [`Db::query`].
pub(crate) type Param = Box<dyn ToSql + Send + Sync>;

/// Why a database call failed, as the stores report it: the error and
/// every cause under it (a pool's error says only "db error" on its own).
pub(crate) fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> String {
    let e = e.into();
    let mut text = format!("database: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        // The server's own words without its DETAIL, which may quote row values.
        let c_text = match c.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
            None => c.to_string(),
        };
        if !text.ends_with(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

impl Db {
    /// Connects to `url` (TLS where its `sslmode` asks, against the
    /// `sslrootcert` it names) and brings the schema up to date.
    pub fn connect(url: &str) -> Result<Db, StoreError> {
        let (url, root_cert) = split_root_cert(url);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| StoreError(format!("storage url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        config.application_name("civex");
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        // Without a CA to check the server against, `prefer` (the default) means plain TCP.
        let plain = match config.get_ssl_mode() {
            SslMode::Disable => true,
            SslMode::Prefer => root_cert.is_none(),
            _ => false,
        };
        let manager = if plain {
            Manager::from_config(config, NoTls, manager_config)
        } else {
            let tls = tls(root_cert.as_deref())?;
            Manager::from_config(config, tls, manager_config)
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("civex-pg")
            .enable_all()
            .build()
            .map_err(StoreError::new)?;
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .create_timeout(Some(Duration::from_secs(3)))
                .wait_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(3)))
                .build()
                .map_err(StoreError::new)?
        };
        let db = Db {
            pool,
            runtime: Arc::new(Runtime(Some(runtime))),
        };
        db.block(|pool| async move { schema::migrate(&pool).await })
            .map_err(StoreError)?;
        Ok(db)
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        // The runtime is taken only on drop, when no handle is left.
        self.runtime
            .0
            .as_ref()
            .map(tokio::runtime::Runtime::handle)
            .unwrap_or_else(|| unreachable!("the database runtime outlives every handle"))
    }

    /// Runs `f` with the pool on the engine's runtime.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle()
            .spawn(f(self.pool.clone()))
            .await
            .map_err(|e| failed(format!("task: {e}")))?
    }

    /// As [`Db::run`], waiting on this thread: for the blocking traits.
    pub(crate) fn block<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn({
            let future = f(self.pool.clone());
            async move {
                let _ = tx.send(future.await);
            }
        });
        let wait = move || {
            rx.recv()
                .unwrap_or_else(|_| Err(failed("the database runtime stopped")))
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    /// The rows of the one statement `sql`, prepared once per connection, with `params`.
    pub(crate) async fn query(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, String> {
        self.run(move |pool| rows(pool, sql, params)).await
    }

    /// As [`Db::query`], waiting on this thread: for the blocking traits.
    pub(crate) fn query_blocking(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, String> {
        self.block(move |pool| rows(pool, sql, params))
    }
}

async fn rows(pool: Pool, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, String> {
    let client = pool.get().await.map_err(failed)?;
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    client.query(&statement, &params).await.map_err(failed)
}

/// Updates the row `update` names or, when there is none, inserts it:
/// both statements take `params`. No upsert, which not every
/// PostgreSQL-compatible database accepts; the caller's transaction (or its
/// lock) keeps two writers of one row apart.
pub(crate) async fn put_row(
    tx: &deadpool_postgres::Transaction<'_>,
    update: &str,
    insert: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), String> {
    if tx.execute(update, params).await.map_err(failed)? == 0 {
        tx.execute(insert, params).await.map_err(failed)?;
    }
    Ok(())
}

/// Takes `sslrootcert=<path>` out of a URL's query.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(
            |pair| match pair.strip_prefix(ROOT_CERT).and_then(|p| p.strip_prefix('=')) {
                Some(path) => {
                    root = Some(path.to_owned());
                    false
                }
                None => true,
            },
        )
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, root)
}

/// A rustls connector trusting the CA in `root_cert` (PEM).
fn tls(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let path = root_cert.ok_or_else(|| {
        StoreError("the storage url asks for TLS (sslmode): name the database's CA with sslrootcert=<file>".into())
    })?;
    let pem = std::fs::read(path).map_err(|e| StoreError(format!("sslrootcert {path}: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| StoreError(format!("sslrootcert {path}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| StoreError(format!("sslrootcert {path}: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(StoreError::new)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Opens every store of the deployment whose database is at `url`.
pub fn open(url: &str) -> Result<Stores, StoreError> {
    let db = Db::connect(url)?;
    let log = Arc::new(log::PgLog::new(db.clone()));
    Ok(Stores {
        agencies: Arc::new(state::PgAgencies(db.clone())),
        certificates: Arc::new(state::PgCertificates(db.clone())),
        consents: Arc::new(state::PgConsents(db.clone())),
        log: civex_audit::LogEngine::Shared(log),
        audit_index: Arc::new(log::PgIndex(db.clone())),
        registries: Arc::new(registries::PgRegistries(db.clone())),
        oversight: Arc::new(oversight::PgOversight(db.clone())),
        commitments: Arc::new(commitments::PgCommitments(db.clone())),
        corrections: Arc::new(corrections::PgCorrections(db.clone())),
        changes: Some(Arc::new(state::PgChanges(db.clone()))),
        load: Some(Arc::new(state::PgLoad(db))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_certificate_is_taken_out_of_the_url() {
        assert_eq!(
            split_root_cert("postgres://a@h/db?sslmode=require&sslrootcert=/x/ca.pem"),
            (
                "postgres://a@h/db?sslmode=require".to_owned(),
                Some("/x/ca.pem".to_owned())
            )
        );
        assert_eq!(
            split_root_cert("postgres://a@h/db"),
            ("postgres://a@h/db".to_owned(), None)
        );
        assert_eq!(
            split_root_cert("postgres://a@h/db?sslrootcert=c.pem"),
            ("postgres://a@h/db".to_owned(), Some("c.pem".to_owned()))
        );
    }
}
