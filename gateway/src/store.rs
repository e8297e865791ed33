//! The data directory: one sled database holding agencies' consents and the
//! embedded department registries, beside the gateway's signing key.

use std::path::{Path, PathBuf};

/// The sled database inside a data directory.
pub const DB_DIR: &str = "db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open store {path} (is another civex using this data directory?): {source}")]
    Open { path: PathBuf, source: sled::Error },
}

/// Opens (creating if needed) the store of the data directory `dir`.
pub fn open(dir: &Path) -> Result<sled::Db, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Create { path: dir.to_owned(), source })?;
    let path = dir.join(DB_DIR);
    sled::Config::new()
        .path(&path)
        .cache_capacity(256 * 1024 * 1024)
        .open()
        .map_err(|source| StoreError::Open { path, source })
}
