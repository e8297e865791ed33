//! The console's calls to the gateway, each made as the logged-in user,
//! and the checks of what comes back: a checkpoint's signature, an entry's
//! inclusion, two checkpoints' consistency.

use civex_audit::{
    checkpoint::{self, Checkpoint},
    keys::Verifier,
    merkle,
};
use civex_proto::v1::{
    CheckpointRequest, ConsistencyProofRequest, InclusionProofRequest, ListCheckpointsRequest, SignedCheckpoint,
    audit_service_client::AuditServiceClient, oversight_service_client::OversightServiceClient,
};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};

/// The gateway the console reads, and the key its checkpoints must carry.
pub(crate) struct Gateway {
    channel: Channel,
    verifier: Verifier,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Verified,
    Failed(String),
}

impl Gateway {
    pub(crate) fn new(channel: Channel, verifier: Verifier) -> Gateway {
        Gateway { channel, verifier }
    }

    pub(crate) fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    pub(crate) fn oversight(&self) -> OversightServiceClient<Channel> {
        OversightServiceClient::new(self.channel.clone())
    }

    /// The name of the key checkpoints are checked with.
    pub(crate) fn key_name(&self) -> String {
        self.verifier.key_id()
    }

    /// The newest stored checkpoints, newest first.
    pub(crate) async fn checkpoints(
        &self,
        user: &str,
        page_size: u32,
        page_token: String,
    ) -> Result<(Vec<SignedCheckpoint>, String), Status> {
        let page = self
            .audit()
            .list_checkpoints(by(user, ListCheckpointsRequest { page_size, page_token }))
            .await?
            .into_inner();
        Ok((page.checkpoints, page.next_page_token))
    }

    /// Checks a checkpoint's signature and that its fields say what its note says.
    pub(crate) fn open(&self, signed: &SignedCheckpoint) -> Result<Checkpoint, String> {
        let cp = checkpoint::verify(&signed.note, &self.verifier).map_err(|e| e.to_string())?;
        if cp.size != signed.tree_size || cp.root.as_slice() != signed.root_hash {
            return Err("the checkpoint's fields disagree with its signed note".to_owned());
        }
        Ok(cp)
    }

    /// A signed checkpoint whose tree holds `index`: the newest stored one
    /// if it does, else a fresh one.
    pub(crate) async fn checkpoint_holding(&self, user: &str, index: u64) -> Result<SignedCheckpoint, Status> {
        let (stored, _) = self.checkpoints(user, 1, String::new()).await?;
        match stored.into_iter().next() {
            Some(cp) if cp.tree_size > index => Ok(cp),
            _ => Ok(self
                .audit()
                .checkpoint(by(user, CheckpointRequest {}))
                .await?
                .into_inner()),
        }
    }

    /// Proves that `leaf` is entry `index` of the tree `cp` signs.
    pub(crate) async fn inclusion(
        &self,
        user: &str,
        index: u64,
        leaf: &[u8],
        cp: &Checkpoint,
    ) -> Result<Outcome, Status> {
        let proof = self
            .audit()
            .inclusion_proof(by(
                user,
                InclusionProofRequest {
                    index,
                    tree_size: cp.size,
                },
            ))
            .await?
            .into_inner();
        Ok(Outcome::from(hashes(&proof.hashes).and_then(|path| {
            merkle::verify_inclusion(&merkle::leaf_hash(leaf), index, cp.size, &path, &cp.root)
                .map_err(|e| e.to_string())
        })))
    }

    /// Proves that the tree `newer` signs extends the one `older` signs.
    pub(crate) async fn consistency(
        &self,
        user: &str,
        older: &Checkpoint,
        newer: &Checkpoint,
    ) -> Result<Outcome, Status> {
        if older.size == 0 {
            return Ok(Outcome::Verified);
        }
        if older.size == newer.size {
            return Ok(Outcome::from(if older.root == newer.root {
                Ok(())
            } else {
                Err("two checkpoints of one size with different roots: the log forked".to_owned())
            }));
        }
        let proof = self
            .audit()
            .consistency_proof(by(
                user,
                ConsistencyProofRequest {
                    first: older.size,
                    second: newer.size,
                },
            ))
            .await?
            .into_inner();
        Ok(Outcome::from(hashes(&proof.hashes).and_then(|path| {
            merkle::verify_consistency(older.size, newer.size, &older.root, &newer.root, &path)
                .map_err(|e| e.to_string())
        })))
    }
}

/// `message` as a request made by `user`: the gateway records it as the operator.
pub(crate) fn by<T>(user: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    // A logged-in user's name passed `session::check_user`: ASCII only.
    if let Ok(value) = MetadataValue::try_from(user) {
        request.metadata_mut().insert(civex_proto::OPERATOR_METADATA, value);
    }
    request
}

impl Outcome {
    /// Whether a check that produced `checked` passed.
    pub(crate) fn of<T>(checked: &Result<T, String>) -> Outcome {
        match checked {
            Ok(_) => Outcome::Verified,
            Err(why) => Outcome::Failed(why.clone()),
        }
    }
}

impl From<Result<(), String>> for Outcome {
    fn from(checked: Result<(), String>) -> Outcome {
        match checked {
            Ok(()) => Outcome::Verified,
            Err(why) => Outcome::Failed(why),
        }
    }
}

fn hashes(raw: &[Vec<u8>]) -> Result<Vec<merkle::Hash>, String> {
    raw.iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| "a proof hash is not 32 bytes".to_owned())
        })
        .collect()
}
