//! The relying-party port: the WebAuthn ceremonies — registering a passkey, and logging in with
//! one.
//!
//! For a registration the service starts a ceremony (creation options for the browser plus an
//! opaque state it records on the user stream) and later hands the browser's response and that
//! state back to be verified. Only what this port returns as a [`VerifiedCredential`] is ever
//! registered: no public entry point takes key bytes from a caller.
//!
//! For a login the service asks for request options and an opaque state (which it seals and
//! hands to the embedder), then — once the browser answers — which credential the assertion
//! names ([`RelyingParty::identify_assertion`]), and finally the verification of the assertion
//! against the state and that credential as stored. Only an assertion this port verified is
//! ever reported as a login.
//!
//! An adapter over webauthn-rs is behind the `webauthn` feature (`passkey_links::webauthn`);
//! embedders with another WebAuthn library implement [`RelyingParty`] themselves.

use std::future::{Future, ready};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::forward_port;
pub use crate::domain::{AssertionVerification, VerifiedAssertion};
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
    /// What the browser sent is not a WebAuthn response of the kind expected (it does not
    /// parse): bad input, never a verification — nothing is recorded and the ceremony stays open.
    #[error("the response is not a WebAuthn {0}")]
    MalformedResponse(&'static str),
}

/// The outcome of verifying a response: a credential, or a typed rejection of the response.
pub type Verification = Result<VerifiedCredential, CeremonyFailure>;

/// What a login is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthenticationRequest {
    /// The credentials the browser may use (a named user's passkeys, as stored); empty: any
    /// discoverable credential (a passkey picked by the user, conditional UI).
    pub credentials: Vec<VerifiedCredential>,
    /// The user-verification policy.
    pub user_verification: UserVerification,
}

impl AuthenticationRequest {
    /// A login with `credentials` (empty: discoverable).
    pub fn new(credentials: Vec<VerifiedCredential>, user_verification: UserVerification) -> Self {
        Self {
            credentials,
            user_verification,
        }
    }
}

/// A started login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartedAuthentication {
    /// The JSON a browser hands to `navigator.credentials.get` (`{"publicKey": {...}}`).
    pub request_options: Value,
    /// The state to verify the assertion against (opaque to the service, which seals it).
    pub state: Value,
}

impl StartedAuthentication {
    /// A started login.
    pub fn new(request_options: Value, state: Value) -> Self {
        Self {
            request_options,
            state,
        }
    }
}

/// What an assertion names, before it is verified: the credential, and the user handle the
/// authenticator returned (unsigned: checked against the credential's user, never trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssertionClaim {
    /// The credential id of the assertion.
    pub credential_id: CredentialId,
    /// The user handle, if the authenticator returned one (discoverable credentials do).
    pub user_handle: Option<Vec<u8>>,
}

impl AssertionClaim {
    /// A claim.
    pub fn new(credential_id: CredentialId, user_handle: Option<Vec<u8>>) -> Self {
        Self {
            credential_id,
            user_handle,
        }
    }
}

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
    /// [`RelyingPartyError::MalformedResponse`] when `response` does not parse as a
    /// registration response; [`RelyingPartyError`] when the relying party itself fails. A
    /// response evaluated and rejected is `Ok(Err(CeremonyFailure))`.
    fn finish_registration(
        &self,
        ceremony: &CeremonyState,
        response: &Value,
    ) -> impl Future<Output = Result<Verification, RelyingPartyError>> + Send;

    /// Starts a login.
    ///
    /// # Errors
    /// [`RelyingPartyError`] when the relying party cannot.
    fn start_authentication(
        &self,
        request: &AuthenticationRequest,
    ) -> impl Future<Output = Result<StartedAuthentication, RelyingPartyError>> + Send;

    /// Which credential (and user handle) the browser's assertion JSON names, before anything
    /// is verified.
    ///
    /// # Errors
    /// [`CeremonyFailure::InvalidResponse`] when `response` is not an assertion.
    fn identify_assertion(&self, response: &Value) -> Result<AssertionClaim, CeremonyFailure>;

    /// Verifies the browser's assertion against a login's `state` and the `credential` it
    /// names, as stored — whose signature counter the service judges, not this port.
    ///
    /// # Errors
    /// [`RelyingPartyError::MalformedResponse`] when `response` does not parse as an
    /// assertion; [`RelyingPartyError`] when the relying party itself fails. An assertion
    /// evaluated and rejected is `Ok(Err(CeremonyFailure))`.
    fn finish_authentication(
        &self,
        state: &Value,
        response: &Value,
        credential: &VerifiedCredential,
    ) -> impl Future<Output = Result<AssertionVerification, RelyingPartyError>> + Send;
}

forward_port!(RelyingParty {
    fn start_registration(&self, request: &RegistrationRequest) -> impl Future<Output = Result<StartedRegistration, RelyingPartyError>> + Send;
    fn finish_registration(&self, ceremony: &CeremonyState, response: &Value) -> impl Future<Output = Result<Verification, RelyingPartyError>> + Send;
    fn start_authentication(&self, request: &AuthenticationRequest) -> impl Future<Output = Result<StartedAuthentication, RelyingPartyError>> + Send;
    fn identify_assertion(&self, response: &Value) -> Result<AssertionClaim, CeremonyFailure>;
    fn finish_authentication(&self, state: &Value, response: &Value, credential: &VerifiedCredential) -> impl Future<Output = Result<AssertionVerification, RelyingPartyError>> + Send;
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

    fn start_authentication(
        &self,
        _: &AuthenticationRequest,
    ) -> impl Future<Output = Result<StartedAuthentication, RelyingPartyError>> + Send {
        ready(Err(RelyingPartyError::NotConfigured))
    }

    fn identify_assertion(&self, _: &Value) -> Result<AssertionClaim, CeremonyFailure> {
        Err(CeremonyFailure::InvalidResponse)
    }

    fn finish_authentication(
        &self,
        _: &Value,
        _: &Value,
        _: &VerifiedCredential,
    ) -> impl Future<Output = Result<AssertionVerification, RelyingPartyError>> + Send {
        ready(Err(RelyingPartyError::NotConfigured))
    }
}
