//! Signed rollback statements: the only way an edge installs an older model version than the
//! newest it has run. Bundle versions rise per model key and are signed in the manifest, so an
//! edge refuses an older one — a replayed desired state or an old signed bundle cannot force a
//! downgrade. A deliberate rollback carries a [`SignedRollback`]: the registry's key signs
//! "key K may go back to version `to_version` on an edge whose newest version is at most
//! `replaces_up_to`, until `expires_at_ms`". Once a newer version was installed, or the
//! statement expired, replaying it does nothing.

use crate::bundle::ModelKey;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest statement text an edge reads.
pub const MAX_STATEMENT_BYTES: usize = 4096;

/// What a rollback allows, signed by the registry key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackStatement {
    /// The model key the rollback is for.
    pub model_key: ModelKey,
    /// The version the edge may go back to.
    pub to_version: u32,
    /// Only edges whose newest version of the key is at most this may do so.
    pub replaces_up_to: u32,
    /// After this (UTC ms) the statement is void.
    pub expires_at_ms: i64,
}

/// A statement as sent in the desired state: its exact JSON text and the hex Ed25519
/// signature over those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRollback {
    /// The [`RollbackStatement`] as JSON text: exactly the bytes that were signed.
    pub statement: String,
    /// Hex Ed25519 signature (64 bytes) over `statement` by the registry key.
    pub signature: String,
}

/// Why a rollback (or a downgrade without one) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadRollback {
    /// The version to install is older than the newest the edge has run, and no statement
    /// came with it.
    #[error(
        "version {to} is older than version {newest}, the newest this edge has run: \
         a downgrade needs a rollback statement signed by the registry key"
    )]
    Unsigned {
        /// The version to install.
        to: u32,
        /// The newest version of the key the edge has run.
        newest: u32,
    },
    /// The statement is longer than [`MAX_STATEMENT_BYTES`] or not a statement's JSON, or
    /// the signature is not 64 hex bytes.
    #[error("rollback statement: {0}")]
    Malformed(String),
    /// The signature does not verify with the configured public key (or that key is invalid).
    #[error("rollback statement was not signed by the configured key")]
    Signature,
    /// The statement names another model key.
    #[error("rollback statement is for {got}, not {want}")]
    WrongKey {
        /// Label of the key the statement names.
        got: String,
        /// Label of the key being installed.
        want: String,
    },
    /// The statement allows another version than the one to install.
    #[error("rollback statement allows version {allowed}, not {to}")]
    WrongVersion {
        /// The statement's `to_version`.
        allowed: u32,
        /// The version to install.
        to: u32,
    },
    /// The edge has run a version newer than the statement's `replaces_up_to`.
    #[error("rollback statement covers edges up to version {up_to}; this edge has run version {newest}")]
    Superseded {
        /// The statement's `replaces_up_to`.
        up_to: u32,
        /// The newest version of the key the edge has run.
        newest: u32,
    },
    /// The statement's `expires_at_ms` has passed.
    #[error("rollback statement expired at {expired_ms} (now {now_ms}, UTC ms)")]
    Expired {
        /// The statement's `expires_at_ms` (UTC ms).
        expired_ms: i64,
        /// When the statement was checked (UTC ms).
        now_ms: i64,
    },
}

impl SignedRollback {
    /// Signs a statement with the registry's private seed.
    pub fn sign(statement: &RollbackStatement, signing_seed: &[u8; 32]) -> SignedRollback {
        // Serialising a plain struct cannot fail.
        let text = serde_json::to_string(statement).unwrap_or_default();
        let signature = ed25519_dalek::SigningKey::from_bytes(signing_seed).sign(text.as_bytes());
        SignedRollback { statement: text, signature: hex::encode(signature.to_bytes()) }
    }

    /// Checks that this statement lets an edge whose newest version of `key` is `newest` go
    /// back to `to` at `now_ms`.
    pub fn allows(
        &self,
        public_key: &[u8; 32],
        key: &ModelKey,
        to: u32,
        newest: u32,
        now_ms: i64,
    ) -> Result<RollbackStatement, BadRollback> {
        if self.statement.len() > MAX_STATEMENT_BYTES {
            return Err(BadRollback::Malformed(format!(
                "{} bytes (at most {MAX_STATEMENT_BYTES})",
                self.statement.len()
            )));
        }
        let sig: [u8; 64] = hex::decode(self.signature.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| BadRollback::Malformed("signature is not 64 hex bytes".into()))?;
        let verifying =
            ed25519_dalek::VerifyingKey::from_bytes(public_key).map_err(|_| BadRollback::Signature)?;
        verifying
            .verify(self.statement.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| BadRollback::Signature)?;
        let st: RollbackStatement =
            serde_json::from_str(&self.statement).map_err(|e| BadRollback::Malformed(e.to_string()))?;
        if &st.model_key != key {
            return Err(BadRollback::WrongKey { got: st.model_key.label(), want: key.label() });
        }
        if st.to_version != to {
            return Err(BadRollback::WrongVersion { allowed: st.to_version, to });
        }
        if newest > st.replaces_up_to {
            return Err(BadRollback::Superseded { up_to: st.replaces_up_to, newest });
        }
        if now_ms > st.expires_at_ms {
            return Err(BadRollback::Expired { expired_ms: st.expires_at_ms, now_ms });
        }
        Ok(st)
    }
}

/// Whether an edge whose newest version of `key` is `newest` may install version `to`: newer
/// or equal always, older only with a valid statement.
pub fn may_install(
    rollback: Option<&SignedRollback>,
    public_key: &[u8; 32],
    key: &ModelKey,
    to: u32,
    newest: u32,
    now_ms: i64,
) -> Result<(), BadRollback> {
    if to >= newest {
        return Ok(());
    }
    match rollback {
        None => Err(BadRollback::Unsigned { to, newest }),
        Some(r) => r.allows(public_key, key, to, newest, now_ms).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn key() -> ModelKey {
        ModelKey { machine_id: "M1".into(), mold: None }
    }

    fn statement(to: u32, up_to: u32) -> RollbackStatement {
        RollbackStatement { model_key: key(), to_version: to, replaces_up_to: up_to, expires_at_ms: 2_000 }
    }

    #[test]
    fn newer_needs_nothing_older_needs_a_valid_statement() {
        let pk = crate::bundle::public_key(&SEED);
        assert_eq!(may_install(None, &pk, &key(), 5, 5, 0), Ok(()));
        assert_eq!(may_install(None, &pk, &key(), 6, 5, 0), Ok(()));
        assert_eq!(may_install(None, &pk, &key(), 3, 5, 0), Err(BadRollback::Unsigned { to: 3, newest: 5 }));
        let good = SignedRollback::sign(&statement(3, 5), &SEED);
        assert_eq!(may_install(Some(&good), &pk, &key(), 3, 5, 1_000), Ok(()));
        assert_eq!(
            may_install(Some(&good), &pk, &key(), 3, 4, 1_000),
            Ok(()),
            "an edge behind may go back too"
        );
    }

    #[test]
    fn replayed_forged_expired_or_foreign_statements_are_refused() {
        let pk = crate::bundle::public_key(&SEED);
        let good = SignedRollback::sign(&statement(3, 5), &SEED);
        let r = |s: &SignedRollback, to, newest, now| may_install(Some(s), &pk, &key(), to, newest, now);
        assert!(matches!(r(&good, 3, 6, 1_000), Err(BadRollback::Superseded { up_to: 5, newest: 6 })));
        assert!(matches!(r(&good, 2, 5, 1_000), Err(BadRollback::WrongVersion { .. })));
        assert!(matches!(r(&good, 3, 5, 2_001), Err(BadRollback::Expired { .. })));
        let mut forged = good.clone();
        forged.statement = forged.statement.replace("\"replaces_up_to\":5", "\"replaces_up_to\":9");
        assert_ne!(forged.statement, good.statement);
        assert_eq!(r(&forged, 3, 6, 1_000), Err(BadRollback::Signature));
        let other = SignedRollback::sign(&statement(3, 5), &[8; 32]);
        assert_eq!(r(&other, 3, 5, 1_000), Err(BadRollback::Signature));
        let mut m1_mold = statement(3, 5);
        m1_mold.model_key.mold = Some("A".into());
        let foreign = SignedRollback::sign(&m1_mold, &SEED);
        assert!(matches!(r(&foreign, 3, 5, 1_000), Err(BadRollback::WrongKey { .. })));
        let garbage =
            SignedRollback { statement: "x".repeat(MAX_STATEMENT_BYTES + 1), signature: "00".into() };
        assert!(matches!(r(&garbage, 3, 5, 0), Err(BadRollback::Malformed(_))));
        assert!(!BadRollback::Unsigned { to: 3, newest: 5 }.to_string().is_empty());
    }
}
