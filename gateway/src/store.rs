//! The data directory: a sled database (`db/`) holding consents and the
//! embedded department registries, the audit log's own sled database
//! (`audit/`, so it can be flushed and reopened on its own), and the
//! gateway's signing key.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The sled database inside a data directory.
pub const DB_DIR: &str = "db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open store {path} (is another civex using this data directory?): {source}")]
    Open { path: PathBuf, source: sled::Error },
}

/// How long to wait for the store's file lock: sled releases it from a
/// background thread shortly after the last handle is dropped, so a process
/// that imports and then serves must wait a moment.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens (creating if needed) the store of the data directory `dir`.
pub fn open(dir: &Path) -> Result<sled::Db, StoreError> {
    open_at(dir, DB_DIR)
}

/// Opens (creating if needed) the sled database `name` inside `dir`.
pub fn open_at(dir: &Path, name: &str) -> Result<sled::Db, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(name);
    let started = Instant::now();
    loop {
        match sled::Config::new().path(&path).cache_capacity(256 * 1024 * 1024).open() {
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::Other && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result.map_err(|source| StoreError::Open { path, source }),
        }
    }
}
