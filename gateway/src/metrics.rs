//! Prometheus metrics (DESIGN §12), in the text exposition format on a
//! plain-HTTP listener of their own (`[metrics] listen`, off unless set):
//! calls by service, method, agency and reason, and their latency; the
//! audit log's batches (records, write and fsync time), tree size and
//! checkpoint age; open connections per agency; quota refusals; tile reads;
//! checkpoints submitted to witnesses;
//! each remote department's circuit breaker; the CRL's next update and the
//! server certificate's expiry.
//!
//! Counters are kept as calls happen; gauges of state are read at each
//! scrape. Labels are agency codes, method names and reasons — never a
//! citizen's ID or anything from a request's fields.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use axum::{Router, extract::State as Shared, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    net::tls::{Connections, ServerCert},
    service::State,
};

type Labels<const N: usize> = [(&'static str, String); N];
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Seconds, from 0.5 ms to about 16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

/// Everything counted; one per gateway, in its [`State`].
pub struct Metrics {
    registry: Registry,
    calls: Family<Labels<4>, Counter>,
    latency: Histograms<2>,
    quota_refusals: Family<Labels<1>, Counter>,
    tile_reads: Family<Labels<2>, Counter>,
    witness_submissions: Family<Labels<2>, Counter>,
    batch_records: Histogram,
    batch_seconds: Histogram,
    tree_size: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
    connections: Family<Labels<1>, Gauge>,
    circuit_open: Family<Labels<1>, Gauge>,
    crl_next_update: Gauge,
    server_certificate_expiry: Gauge,
    /// When this gateway last made a signed checkpoint durable.
    last_checkpoint: std::sync::Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("civex");
        let metrics = Metrics {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_buckets),
            quota_refusals: Family::default(),
            tile_reads: Family::default(),
            witness_submissions: Family::default(),
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            batch_seconds: latency_buckets(),
            tree_size: Gauge::default(),
            checkpoint_age: Gauge::default(),
            connections: Family::default(),
            circuit_open: Family::default(),
            crl_next_update: Gauge::default(),
            server_certificate_expiry: Gauge::default(),
            last_checkpoint: std::sync::Mutex::new(None),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "calls",
            "Calls answered, by service, method, calling agency and reason (OK when allowed)",
            m.calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Time from a call's arrival to its answer, its record durable",
            m.latency.clone(),
        );
        registry.register(
            "quota_refusals",
            "Calls refused RATE_LIMITED, by agency",
            m.quota_refusals.clone(),
        );
        registry.register(
            "tile_reads",
            "Reads of the log's tlog-tiles (not log entries), by resource and HTTP status",
            m.tile_reads.clone(),
        );
        registry.register(
            "witness_submissions",
            "Checkpoints submitted to a witness, by witness name and outcome (cosigned, ahead, failed)",
            m.witness_submissions.clone(),
        );
        registry.register(
            "audit_batch_records",
            "Records per audit-log batch made durable",
            m.batch_records.clone(),
        );
        registry.register(
            "audit_batch_write_seconds",
            "Time to make one audit-log batch durable (write and fsync, or the shared log's transaction)",
            m.batch_seconds.clone(),
        );
        registry.register(
            "audit_tree_size",
            "Records in the audit log's Merkle tree",
            m.tree_size.clone(),
        );
        registry.register(
            "audit_checkpoint_age_seconds",
            "Seconds since this gateway last made a signed checkpoint durable",
            m.checkpoint_age.clone(),
        );
        registry.register("connections", "Open mTLS connections, by agency", m.connections.clone());
        registry.register(
            "source_circuit_open",
            "1 while calls to a department's own system are held back by its circuit breaker, by department",
            m.circuit_open.clone(),
        );
        registry.register(
            "crl_next_update_timestamp_seconds",
            "When the CRL in force expires (Unix time); it is re-signed at half its validity",
            m.crl_next_update.clone(),
        );
        registry.register(
            "server_certificate_expiry_timestamp_seconds",
            "When the gateway's server certificate expires (Unix time)",
            m.server_certificate_expiry.clone(),
        );
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// One answered call: `method` is `Service/Method`, `reason` `None` when allowed.
    pub fn call(&self, method: &str, agency: &str, reason: Option<&str>, took: Duration) {
        let (service, name) = method.split_once('/').unwrap_or((method, ""));
        let reason = reason.unwrap_or("OK");
        self.calls
            .get_or_create(&[
                ("service", service.to_owned()),
                ("method", name.to_owned()),
                ("agency", agency.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
        self.latency
            .get_or_create(&[("service", service.to_owned()), ("method", name.to_owned())])
            .observe(took.as_secs_f64());
        if reason == crate::error::Reason::RateLimited.as_str() {
            self.quota_refusals
                .get_or_create(&[("agency", agency.to_owned())])
                .inc();
        }
    }

    /// One read of a tile resource (`checkpoint`, `tile` or `entries`) and its HTTP status.
    pub fn tile_read(&self, resource: &'static str, status: u16) {
        self.tile_reads
            .get_or_create(&[("resource", resource.to_owned()), ("status", status.to_string())])
            .inc();
    }

    /// One checkpoint submitted to `witness` and what came of it.
    pub fn witness(&self, witness: &str, outcome: &'static str) {
        self.witness_submissions
            .get_or_create(&[("witness", witness.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
    }

    /// One audit-log batch made durable; `checkpointed`, whether a signed checkpoint came with it.
    pub fn batch(&self, records: usize, took: Duration, checkpointed: bool) {
        self.batch_records.observe(records as f64);
        self.batch_seconds.observe(took.as_secs_f64());
        if checkpointed {
            *self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    /// The text exposition, gauges read now.
    fn render(&self, state: &State, connections: &Connections, server_expiry: Option<i64>) -> String {
        if let Ok(size) = state.audit.tree_size() {
            self.tree_size.set(size as i64);
        }
        if let Some(at) = *self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()) {
            self.checkpoint_age.set(at.elapsed().as_secs_f64());
        }
        self.connections.clear();
        for (agency, open) in connections.snapshot() {
            self.connections.get_or_create(&[("agency", agency)]).set(open as i64);
        }
        for (department, open) in state.departments.circuits() {
            self.circuit_open
                .get_or_create(&[("department", department.code().to_owned())])
                .set(i64::from(open));
        }
        if let Some(at) = state.authority.crl_next_update() {
            self.crl_next_update.set(at);
        }
        if let Some(at) = server_expiry {
            self.server_certificate_expiry.set(at);
        }
        let mut out = String::new();
        match encode(&mut out, &self.registry) {
            Ok(()) => out,
            Err(e) => {
                tracing::error!(cause = %e, "metrics could not be encoded");
                String::new()
            }
        }
    }
}

/// What the metrics listener serves from.
#[derive(Clone)]
pub(crate) struct Scrape {
    pub(crate) state: Arc<State>,
    pub(crate) connections: Connections,
    pub(crate) server_cert: Arc<ServerCert>,
}

/// `GET /metrics`.
pub(crate) fn router(scrape: Scrape) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(scrape)
}

async fn metrics(Shared(scrape): Shared<Scrape>) -> impl IntoResponse {
    let body = scrape
        .state
        .metrics
        .render(&scrape.state, &scrape.connections, scrape.server_cert.not_after());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
