//! A witness (C2SP tlog-witness): it cosigns a log's checkpoint only if
//! it is consistent with the last one it cosigned for that origin, and
//! keeps that last one in a small store of its own, so that a log showing
//! two auditors two different trees is caught by whoever compares
//! cosigned checkpoints.
//!
//! [`Witness::add_checkpoint`] is the `add-checkpoint` call without its
//! HTTP: the request body in, the cosignature lines or a [`Refusal`] (which
//! carries the spec's HTTP status) out. Checking the old size against the
//! stored one and storing the new checkpoint happen under one lock, and
//! the store is flushed before the cosignature is returned.

use std::{
    collections::HashMap,
    path::Path,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};

use crate::{
    checkpoint::{self, CheckpointError},
    embedded::{OpenError, open_db},
    keys::{KeyKind, Signer, SigningError, Verifier},
    merkle::{self, Hash},
};

/// Most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// Why a checkpoint is not cosigned, with the status the spec gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    #[error("no log with origin {0:?} is known to this witness")]
    UnknownOrigin(String),
    #[error("no signature on the checkpoint verifies with a key trusted for {0:?}")]
    NotSigned(String),
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldTooLarge { old: u64, size: u64 },
    /// The old size is not the size last cosigned; the client retries from it.
    #[error("old size {old} is not the size last cosigned, {stored}")]
    OldSizeMismatch { old: u64, stored: u64 },
    #[error("the consistency proof from {old} to {size} does not verify: {cause}")]
    BadProof { old: u64, size: u64, cause: String },
    #[error("a checkpoint of size {0} with a different root was cosigned before: the log is forked")]
    Fork(u64),
    #[error("the witness store failed: {0}")]
    Store(String),
}

impl Refusal {
    /// The HTTP status of C2SP tlog-witness for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldTooLarge { .. } => 400,
            Refusal::NotSigned(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::OldSizeMismatch { .. } | Refusal::Fork(_) => 409,
            Refusal::BadProof { .. } => 422,
            Refusal::Store(_) => 500,
        }
    }
}

/// An `add-checkpoint` request body: `old <size>`, the proof lines, a blank line, the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub note: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn encode(&self) -> String {
        let mut body = format!("old {}\n", self.old);
        for hash in &self.proof {
            body.push_str(&B64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }

    /// Parses a request body, in the spec's one spelling.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, Refusal> {
        let bad = |m: &str| Refusal::Malformed(m.to_owned());
        let body = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let (head, note) = body
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (*n == "0" || !n.starts_with('0')))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the first line must be `old <size>` in decimal"))?;
        let proof = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or_else(|| bad("a proof line is not one base64 hash"))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(bad("more than 63 proof lines"));
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: note.to_owned(),
        })
    }
}

/// The witness: its cosigning key, the log keys it trusts by origin, and its store.
pub struct Witness {
    signer: Signer,
    logs: HashMap<String, Vec<Verifier>>,
    db: sled::Db,
    /// Held from reading the stored size to flushing the new one.
    lock: Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenWitnessError {
    #[error(transparent)]
    Key(#[from] SigningError),
    #[error(transparent)]
    Store(#[from] OpenError),
}

impl Witness {
    /// Opens the witness whose key and store are in `dir` (creating both on
    /// first use), trusting `logs`: each a log's note verifier key, whose
    /// name is the log's origin.
    pub fn open(dir: &Path, name: &str, logs: Vec<Verifier>) -> Result<Witness, OpenWitnessError> {
        let signer = Signer::load_or_create_kind(dir, name, KeyKind::Cosignature)?;
        let db = open_db(dir, "witness-store")?;
        let mut by_origin: HashMap<String, Vec<Verifier>> = HashMap::new();
        for log in logs {
            by_origin.entry(log.name.clone()).or_default().push(log);
        }
        Ok(Witness {
            signer,
            logs: by_origin,
            db,
            lock: Mutex::new(()),
        })
    }

    /// The witness's cosignature verifier key, for logs' `[[audit.witnesses]]`.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Result<Option<String>, Refusal> {
        let stored = self.db.get(origin.as_bytes()).map_err(store)?;
        stored
            .map(|note| {
                String::from_utf8(note.to_vec()).map_err(|_| Refusal::Store("a stored note is not UTF-8".into()))
            })
            .transpose()
    }

    /// The `add-checkpoint` call: the cosignature line to answer with.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, Refusal> {
        let request = AddCheckpoint::parse(body)?;
        let (body, signatures) = checkpoint::split(&request.note).map_err(malformed)?;
        let (origin, size, root) = checkpoint::parse_body(body).map_err(malformed)?;
        let keys = self
            .logs
            .get(origin)
            .ok_or_else(|| Refusal::UnknownOrigin(origin.to_owned()))?;
        if !keys.iter().any(|key| checkpoint::verify(&request.note, key).is_ok()) {
            return Err(Refusal::NotSigned(origin.to_owned()));
        }
        let old = request.old;
        if old > size {
            return Err(Refusal::OldTooLarge { old, size });
        }
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let stored = match self.latest(origin)? {
            Some(note) => {
                let (stored_body, _) = checkpoint::split(&note).map_err(corrupt)?;
                let (_, size, root) = checkpoint::parse_body(stored_body).map_err(corrupt)?;
                (size, root)
            }
            None => (0, merkle::empty_root()),
        };
        if old != stored.0 {
            return Err(Refusal::OldSizeMismatch { old, stored: stored.0 });
        }
        let bad_proof = |cause: String| {
            tracing::warn!(origin, old, size, %cause, "a validly signed checkpoint is not consistent: possible log misbehaviour");
            Refusal::BadProof { old, size, cause }
        };
        if old == size && stored.1 != root {
            tracing::warn!(origin, size, "a validly signed checkpoint forks the log");
            return Err(Refusal::Fork(size));
        }
        if old == 0 || old == size {
            if !request.proof.is_empty() {
                return Err(bad_proof(format!("the proof from size {old} to {size} must be empty")));
            }
        } else {
            merkle::verify_consistency(old, size, &stored.1, &root, &request.proof)
                .map_err(|e| bad_proof(e.to_string()))?;
        }
        // Only the log's valid signatures are kept: the stored note is the evidence.
        let kept: String = signatures
            .lines()
            .filter(|line| {
                keys.iter()
                    .any(|key| checkpoint::verify(&format!("{body}\n{line}\n"), key).is_ok())
            })
            .map(|line| format!("{line}\n"))
            .collect();
        self.db
            .insert(origin.as_bytes(), format!("{body}\n{kept}").as_bytes())
            .map_err(store)?;
        self.db.flush().map_err(store)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(checkpoint::cosign(&self.signer, body, now))
    }
}

fn malformed(e: CheckpointError) -> Refusal {
    Refusal::Malformed(e.to_string())
}

fn corrupt(e: CheckpointError) -> Refusal {
    Refusal::Store(format!("the stored checkpoint is unreadable: {e}"))
}

fn store(e: sled::Error) -> Refusal {
    Refusal::Store(e.to_string())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::{checkpoint::sign, merkle::leaf_hash};

    /// A checkpoint of `leaves` signed by `log`, with a consistency proof from `old`.
    fn submission(log: &Signer, leaves: &[Hash], old: u64) -> Vec<u8> {
        // Every node asked for is a complete subtree: its MTH.
        let mut node = |level: u32, index: u64| -> Result<Hash, ()> {
            let span = 1usize << level;
            Ok(naive(&leaves[index as usize * span..(index as usize + 1) * span]))
        };
        let size = leaves.len() as u64;
        let proof = if old == 0 || old >= size {
            Vec::new()
        } else {
            merkle::consistency_proof(&mut node, old, size).unwrap().unwrap()
        };
        let note = sign(log, size, &naive(leaves)).note;
        AddCheckpoint { old, proof, note }.encode().into_bytes()
    }

    /// RFC 6962's MTH over leaf hashes, from its definition.
    fn naive(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => merkle::empty_root(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                merkle::node_hash(&naive(&leaves[..k]), &naive(&leaves[k..]))
            }
        }
    }

    fn leaves(tag: &str, n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("{tag}{i}").as_bytes())).collect()
    }

    #[test]
    fn cosigns_a_growing_log_and_refuses_every_fork() {
        let dir = tempfile::tempdir().unwrap();
        let log = Signer::new(SigningKey::from_bytes(&[3; 32]), "civex/test");
        let stranger = Signer::new(SigningKey::from_bytes(&[4; 32]), "civex/test");
        let trusted = Verifier::parse(&log.verifier_key()).unwrap();
        let witness = Witness::open(dir.path(), "witness.test/w1", vec![trusted]).unwrap();
        let key = Verifier::parse_kind(&witness.verifier_key(), KeyKind::Cosignature).unwrap();
        let honest = leaves("a", 20);

        let first = witness.add_checkpoint(&submission(&log, &honest[..5], 0)).unwrap();
        let note = sign(&log, 5, &naive(&honest[..5])).note;
        let (body, _) = checkpoint::split(&note).unwrap();
        assert!(checkpoint::cosigned_at(body, &first, &key).is_some());
        // The client forgot the size: 409 names it.
        assert_eq!(
            witness.add_checkpoint(&submission(&log, &honest[..9], 0)),
            Err(Refusal::OldSizeMismatch { old: 0, stored: 5 })
        );
        witness.add_checkpoint(&submission(&log, &honest[..9], 5)).unwrap();
        // The same checkpoint again is cosigned again.
        witness.add_checkpoint(&submission(&log, &honest[..9], 9)).unwrap();

        // A fork at the same size, and one that grows from a rewritten past.
        let mut forked = honest.clone();
        forked[3] = leaf_hash(b"rewritten");
        assert_eq!(
            witness.add_checkpoint(&submission(&log, &forked[..9], 9)),
            Err(Refusal::Fork(9))
        );
        let refused = witness.add_checkpoint(&submission(&log, &forked[..14], 9)).unwrap_err();
        assert!(
            matches!(refused, Refusal::BadProof { old: 9, size: 14, .. }),
            "{refused:?}"
        );
        assert_eq!(refused.status(), 422);
        // Shrinking, a stranger's key, an unknown origin.
        assert_eq!(
            witness.add_checkpoint(&submission(&log, &honest[..4], 9)),
            Err(Refusal::OldTooLarge { old: 9, size: 4 })
        );
        assert_eq!(
            witness.add_checkpoint(&submission(&stranger, &honest[..12], 9)),
            Err(Refusal::NotSigned("civex/test".into()))
        );
        let other = Signer::new(SigningKey::from_bytes(&[3; 32]), "civex/other");
        assert_eq!(
            witness
                .add_checkpoint(&submission(&other, &honest[..12], 9))
                .unwrap_err()
                .status(),
            404
        );
        // None of that moved the stored checkpoint; the honest log goes on.
        assert_eq!(
            checkpoint::size_of(&witness.latest("civex/test").unwrap().unwrap()),
            Some(9)
        );
        witness.add_checkpoint(&submission(&log, &honest[..20], 9)).unwrap();

        // The store survives a restart.
        drop(witness);
        let witness = Witness::open(
            dir.path(),
            "ignored",
            vec![Verifier::parse(&log.verifier_key()).unwrap()],
        )
        .unwrap();
        assert_eq!(
            Verifier::parse_kind(&witness.verifier_key(), KeyKind::Cosignature)
                .unwrap()
                .key_id(),
            key.key_id()
        );
        assert_eq!(
            witness.add_checkpoint(&submission(&log, &honest[..20], 9)),
            Err(Refusal::OldSizeMismatch { old: 9, stored: 20 })
        );
    }

    #[test]
    fn requests_parse_in_the_spec_spelling_only() {
        let note = "o\n1\nAAAA\n\n\u{2014} o x\n";
        let parsed = AddCheckpoint::parse(format!("old 0\n\n{note}").as_bytes()).unwrap();
        assert_eq!((parsed.old, parsed.proof.len(), parsed.note.as_str()), (0, 0, note));
        let hash = B64.encode([7u8; 32]);
        let two = AddCheckpoint::parse(format!("old 12\n{hash}\n{hash}\n\n{note}").as_bytes()).unwrap();
        assert_eq!(two.proof, vec![[7u8; 32]; 2]);
        assert_eq!(AddCheckpoint::parse(two.encode().as_bytes()).unwrap(), two);
        let many = format!("old 1\n{}\n{note}", format!("{hash}\n").repeat(64));
        for bad in [
            format!("old 01\n\n{note}"),
            format!("old \n\n{note}"),
            format!("old -1\n\n{note}"),
            format!("Old 1\n\n{note}"),
            format!("old 1\nnot-base64\n\n{note}"),
            format!("old 1\n{}\n\n{note}", B64.encode([1u8; 31])),
            "old 1\n".to_owned(),
            many,
        ] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
