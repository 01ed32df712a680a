//! The relying-party port: the WebAuthn registration ceremony.
//!
//! The service starts a ceremony (creation options for the browser plus an opaque state it
//! records on the user stream) and later hands the browser's response and that state back to be
//! verified. Only what this port returns as a [`VerifiedCredential`] is ever registered: no
//! public entry point takes key bytes from a caller.
//!
//! An adapter over webauthn-rs is behind the `webauthn` feature (`passkey_links::webauthn`);
//! embedders with another WebAuthn library implement [`RelyingParty`] themselves.

use std::future::{Future, ready};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::forward_port;
use crate::domain::{CeremonyFailure, CeremonyState, CredentialId, VerifiedCredential};

/// Whether the authenticator must verify the user (PIN, biometrics) during registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserVerification {
    /// Ask for it; accept an authenticator that cannot (WebAuthn's default).
    #[default]
    Preferred,
    /// Refuse a registration without user verification.
    Required,
    /// Do not ask for it.
    Discouraged,
}

/// What a registration is for: the user as the authenticator will store it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationRequest {
    /// The WebAuthn user handle: opaque bytes, stable per user, no personal data.
    pub user_handle: Vec<u8>,
    /// The account name (`user.name`).
    pub user_name: String,
    /// The display name (`user.displayName`).
    pub display_name: String,
    /// Credentials the user holds already (the browser refuses to register them again).
    pub exclude_credentials: Vec<CredentialId>,
    /// The user-verification policy.
    pub user_verification: UserVerification,
}

impl RegistrationRequest {
    /// A request for a user.
    pub fn new(
        user_handle: Vec<u8>,
        user_name: impl Into<String>,
        display_name: impl Into<String>,
        exclude_credentials: Vec<CredentialId>,
        user_verification: UserVerification,
    ) -> Self {
        Self {
            user_handle,
            user_name: user_name.into(),
            display_name: display_name.into(),
            exclude_credentials,
            user_verification,
        }
    }
}

/// A started registration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartedRegistration {
    /// The JSON a browser hands to `navigator.credentials.create` (`{"publicKey": {...}}`).
    pub creation_options: Value,
    /// The state to verify the response against.
    pub ceremony: CeremonyState,
}

impl StartedRegistration {
    /// A started registration.
    pub fn new(creation_options: Value, ceremony: CeremonyState) -> Self {
        Self {
            creation_options,
            ceremony,
        }
    }
}

/// The relying party itself failed (not the response).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelyingPartyError {
    /// The ceremony could not be started or verified for a reason of the relying party's own
    /// (misconfiguration, unreadable recorded state).
    #[error("relying party failure: {0}")]
    Internal(String),
    /// No relying party is configured.
    #[error("no relying party is configured")]
    NotConfigured,
}

/// The outcome of verifying a response: a credential, or a typed rejection of the response.
pub type Verification = Result<VerifiedCredential, CeremonyFailure>;

/// Runs WebAuthn registration ceremonies.
pub trait RelyingParty: Send + Sync {
    /// Starts a registration.
    ///
    /// # Errors
    /// [`RelyingPartyError`] when the relying party cannot.
    fn start_registration(
        &self,
        request: &RegistrationRequest,
    ) -> impl Future<Output = Result<StartedRegistration, RelyingPartyError>> + Send;

    /// Verifies the browser's `PublicKeyCredential` JSON against a recorded ceremony.
    ///
    /// # Errors
    /// [`RelyingPartyError`] when the relying party itself fails; a bad response is
    /// `Ok(Err(CeremonyFailure))`.
    fn finish_registration(
        &self,
        ceremony: &CeremonyState,
        response: &Value,
    ) -> impl Future<Output = Result<Verification, RelyingPartyError>> + Send;
}

forward_port!(RelyingParty {
    fn start_registration(&self, request: &RegistrationRequest) -> impl Future<Output = Result<StartedRegistration, RelyingPartyError>> + Send;
    fn finish_registration(&self, ceremony: &CeremonyState, response: &Value) -> impl Future<Output = Result<Verification, RelyingPartyError>> + Send;
});

/// The relying party of a service built without one: every ceremony is refused as
/// [`RelyingPartyError::NotConfigured`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRelyingParty;

impl RelyingParty for NoRelyingParty {
    fn start_registration(
        &self,
        _: &RegistrationRequest,
    ) -> impl Future<Output = Result<StartedRegistration, RelyingPartyError>> + Send {
        ready(Err(RelyingPartyError::NotConfigured))
    }

    fn finish_registration(
        &self,
        _: &CeremonyState,
        _: &Value,
    ) -> impl Future<Output = Result<Verification, RelyingPartyError>> + Send {
        ready(Err(RelyingPartyError::NotConfigured))
    }
}
