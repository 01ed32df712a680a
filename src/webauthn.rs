//! A [`RelyingParty`] over webauthn-rs, the Kanidm project's WebAuthn library (feature
//! `webauthn`).
//!
//! Registration runs on `webauthn-rs-core` with the choices a passkey needs — a resident
//! (discoverable) key required, user verification per [`UserVerification`], no attestation
//! requested, webauthn-rs's secure algorithm list — because webauthn-rs's high-level passkey
//! registration leaves the resident key optional. Every check of the response (challenge,
//! origin, rp id hash, flags, algorithm, exclusions, signature) is webauthn-rs's own. The
//! verified credential carries a `webauthn_rs::prelude::Passkey` as its adapter form.
//!
//! Logins run on `webauthn-rs-core` too — a named user's passkeys as `allowCredentials`, or none
//! for a discoverable credential (conditional UI) — and every check of the assertion (challenge,
//! origin, rp id hash, flags, signature, the credential being one the login allows) is
//! webauthn-rs's own. The signature counter is left to the service, which judges it against the
//! count it stored last (webauthn-rs would compare with the count at registration).

/// The webauthn-rs crates whose types cross this API (the adapter form of a stored passkey,
/// the builder of a relying party), re-exported so an embedder uses the same versions.
pub use webauthn_rs;
/// See [`webauthn_rs`].
pub use webauthn_rs_core;

use std::time::Duration;

use serde_json::Value;
use url::Url;
use webauthn_rs::prelude::{Passkey, Webauthn, WebauthnBuilder};
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, Credential,
    PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState,
    RequestRegistrationExtensions, UserVerificationPolicy,
};

use crate::domain::{CeremonyFailure, CeremonyState, CredentialId, PublicKey, VerifiedCredential};
use crate::ports::relying_party::{
    AssertionClaim, AssertionVerification, AuthenticationRequest, RegistrationRequest,
    RelyingParty, RelyingPartyError, StartedAuthentication, StartedRegistration, UserVerification,
    Verification, VerifiedAssertion,
};

/// How long the browser may take (the ceremony itself closes after 5 minutes).
const AUTHENTICATOR_TIMEOUT: Duration = Duration::from_secs(300);

/// The relying-party configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebauthnConfigError {
    /// No allowed origin.
    #[error("at least one allowed origin is required")]
    NoOrigin,
    /// An origin is not an absolute URL.
    #[error("origin {0:?} is not an absolute URL")]
    BadOrigin(String),
    /// The rp id is not the host of an origin or a parent domain of it.
    #[error("rp id {rp_id:?} is not the effective domain of origin {origin:?}")]
    RpIdMismatch {
        /// The rp id.
        rp_id: String,
        /// The origin.
        origin: String,
    },
}

/// A relying party over webauthn-rs.
#[derive(Debug, Clone)]
pub struct WebauthnRelyingParty {
    core: WebauthnCore,
    login: Webauthn,
}

impl WebauthnRelyingParty {
    /// A relying party for `rp_id` (e.g. `id.example.com`), shown to users as `rp_name`, that
    /// accepts responses from `allowed_origins` (e.g. `https://id.example.com`).
    ///
    /// # Errors
    /// [`WebauthnConfigError`] for no origin, a malformed origin, or an rp id that is not each
    /// origin's host or a parent domain of it.
    pub fn new(
        rp_id: &str,
        rp_name: &str,
        allowed_origins: &[&str],
    ) -> Result<Self, WebauthnConfigError> {
        let origins = allowed_origins
            .iter()
            .map(|origin| {
                Url::parse(origin).map_err(|_| WebauthnConfigError::BadOrigin((*origin).to_owned()))
            })
            .collect::<Result<Vec<Url>, _>>()?;
        let first = origins.first().ok_or(WebauthnConfigError::NoOrigin)?;
        for origin in &origins {
            WebauthnBuilder::new(rp_id, origin).map_err(|_| WebauthnConfigError::RpIdMismatch {
                rp_id: rp_id.to_owned(),
                origin: origin.as_str().to_owned(),
            })?;
        }
        let login = origins
            .iter()
            .skip(1)
            .fold(
                WebauthnBuilder::new(rp_id, first).map_err(|_| {
                    WebauthnConfigError::RpIdMismatch {
                        rp_id: rp_id.to_owned(),
                        origin: first.as_str().to_owned(),
                    }
                })?,
                |builder, origin| builder.append_allowed_origin(origin),
            )
            .rp_name(rp_name)
            .build()
            .map_err(|_| WebauthnConfigError::RpIdMismatch {
                rp_id: rp_id.to_owned(),
                origin: first.as_str().to_owned(),
            })?;
        let core = WebauthnCore::new_unsafe_experts_only(
            rp_name,
            rp_id,
            origins,
            AUTHENTICATOR_TIMEOUT,
            Some(false),
            Some(false),
        );
        Ok(Self { core, login })
    }

    /// The webauthn-rs instance with the same relying-party configuration, for ceremonies of
    /// an embedder's own (logins run through [`RelyingParty::start_authentication`]).
    pub fn webauthn(&self) -> &Webauthn {
        &self.login
    }

    /// The webauthn-rs passkey stored with a credential this adapter verified.
    ///
    /// # Errors
    /// When the stored form is not a webauthn-rs passkey (another adapter registered it).
    pub fn passkey(credential: &VerifiedCredential) -> Result<Passkey, serde_json::Error> {
        serde_json::from_value(credential.adapter_credential.clone())
    }

    fn start(
        &self,
        request: &RegistrationRequest,
    ) -> Result<StartedRegistration, RelyingPartyError> {
        let internal = |err: WebauthnError| RelyingPartyError::Internal(err.to_string());
        let policy = policy(request.user_verification);
        let extensions = RequestRegistrationExtensions {
            cred_protect: None,
            uvm: None,
            cred_props: Some(true),
            min_pin_length: None,
            hmac_create_secret: None,
        };
        let exclude = request
            .exclude_credentials
            .iter()
            .map(|id| id.as_bytes().to_vec())
            .collect();
        let builder = self
            .core
            .new_challenge_register_builder(
                &request.user_handle,
                &request.user_name,
                &request.display_name,
            )
            .map_err(internal)?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .require_resident_key(true)
            .user_verification_policy(policy)
            .exclude_credentials(Some(exclude))
            .extensions(Some(extensions));
        let (options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(internal)?;
        let encode = |err: serde_json::Error| RelyingPartyError::Internal(err.to_string());
        Ok(StartedRegistration::new(
            serde_json::to_value(&options).map_err(encode)?,
            CeremonyState::new(serde_json::to_value(&state).map_err(encode)?),
        ))
    }

    fn finish(
        &self,
        ceremony: &CeremonyState,
        response: &Value,
    ) -> Result<Verification, RelyingPartyError> {
        let state: RegistrationState = serde_json::from_value(ceremony.as_value().clone())
            .map_err(|err| {
                RelyingPartyError::Internal(format!("unreadable ceremony state: {err}"))
            })?;
        let registration = serde_json::from_value::<RegisterPublicKeyCredential>(response.clone())
            .map_err(|_| RelyingPartyError::MalformedResponse("registration response"))?;
        let credential = match self.core.register_credential(&registration, &state, None) {
            Ok(credential) => credential,
            Err(err) => return Ok(Err(rejection(&err))),
        };
        // webauthn-rs verified the response; read what it does not keep (the authenticator's
        // exact COSE key bytes and its AAGUID) from the same attestation object.
        let Some(attested) = attested_data(&registration.response.attestation_object) else {
            return Ok(Err(CeremonyFailure::InvalidResponse));
        };
        verified(credential, attested).map(Ok)
    }
}

/// A login's state as this adapter keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct LoginState {
    /// No credential was named: the assertion's own is allowed once identified.
    discoverable: bool,
    state: AuthenticationState,
}

impl WebauthnRelyingParty {
    fn start_login(
        &self,
        request: &AuthenticationRequest,
    ) -> Result<StartedAuthentication, RelyingPartyError> {
        let internal = |err: WebauthnError| RelyingPartyError::Internal(err.to_string());
        let encode = |err: serde_json::Error| RelyingPartyError::Internal(err.to_string());
        let credentials = request
            .credentials
            .iter()
            .map(credential_of)
            .collect::<Result<Vec<Credential>, _>>()?;
        let discoverable = credentials.is_empty();
        let builder = self
            .core
            .new_challenge_authenticate_builder(
                credentials,
                Some(policy(request.user_verification)),
            )
            .map_err(internal)?
            .allow_backup_eligible_upgrade(true);
        let (options, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(internal)?;
        let state = LoginState {
            discoverable,
            state,
        };
        Ok(StartedAuthentication::new(
            serde_json::to_value(&options).map_err(encode)?,
            serde_json::to_value(&state).map_err(encode)?,
        ))
    }

    fn finish_login(
        &self,
        state: &Value,
        response: &Value,
        stored: &VerifiedCredential,
    ) -> Result<AssertionVerification, RelyingPartyError> {
        let mut login: LoginState = serde_json::from_value(state.clone())
            .map_err(|err| RelyingPartyError::Internal(format!("unreadable login state: {err}")))?;
        let assertion = serde_json::from_value::<PublicKeyCredential>(response.clone())
            .map_err(|_| RelyingPartyError::MalformedResponse("assertion"))?;
        let credential = credential_of(stored)?;
        if login.discoverable {
            login.state.set_allowed_credentials(vec![credential]);
        }
        let result = match self.core.authenticate_credential(&assertion, &login.state) {
            Ok(result) => result,
            Err(err) => return Ok(Err(rejection(&err))),
        };
        let credential_id = CredentialId::new(result.cred_id().to_vec())
            .map_err(|err| RelyingPartyError::Internal(err.to_string()))?;
        Ok(Ok(VerifiedAssertion::new(
            credential_id,
            result.counter(),
            result.backup_state(),
            result.user_verified(),
        )))
    }
}

/// The webauthn-rs credential stored with a passkey this adapter registered, its counter
/// cleared: the service judges the counter against the one it stored last.
fn credential_of(stored: &VerifiedCredential) -> Result<Credential, RelyingPartyError> {
    let passkey = WebauthnRelyingParty::passkey(stored).map_err(|err| {
        RelyingPartyError::Internal(format!("a stored credential of another adapter: {err}"))
    })?;
    let mut credential = Credential::from(passkey);
    credential.counter = 0;
    Ok(credential)
}

/// The webauthn-rs user-verification policy of a [`UserVerification`].
fn policy(user_verification: UserVerification) -> UserVerificationPolicy {
    match user_verification {
        UserVerification::Required => UserVerificationPolicy::Required,
        UserVerification::Discouraged => UserVerificationPolicy::Discouraged_DO_NOT_USE,
        _ => UserVerificationPolicy::Preferred,
    }
}

impl RelyingParty for WebauthnRelyingParty {
    async fn start_registration(
        &self,
        request: &RegistrationRequest,
    ) -> Result<StartedRegistration, RelyingPartyError> {
        self.start(request)
    }

    async fn finish_registration(
        &self,
        ceremony: &CeremonyState,
        response: &Value,
    ) -> Result<Verification, RelyingPartyError> {
        self.finish(ceremony, response)
    }

    async fn start_authentication(
        &self,
        request: &AuthenticationRequest,
    ) -> Result<StartedAuthentication, RelyingPartyError> {
        self.start_login(request)
    }

    fn identify_assertion(&self, response: &Value) -> Result<AssertionClaim, CeremonyFailure> {
        let assertion = serde_json::from_value::<PublicKeyCredential>(response.clone())
            .map_err(|_| CeremonyFailure::InvalidResponse)?;
        let credential_id = CredentialId::new(assertion.get_credential_id().to_vec())
            .map_err(|_| CeremonyFailure::InvalidResponse)?;
        Ok(AssertionClaim::new(
            credential_id,
            assertion.get_user_unique_id().map(<[u8]>::to_vec),
        ))
    }

    async fn finish_authentication(
        &self,
        state: &Value,
        response: &Value,
        credential: &VerifiedCredential,
    ) -> Result<AssertionVerification, RelyingPartyError> {
        self.finish_login(state, response, credential)
    }
}

/// The typed rejection of a webauthn-rs verification error.
fn rejection(err: &WebauthnError) -> CeremonyFailure {
    use WebauthnError as E;
    match err {
        E::MismatchedChallenge | E::ChallengeNotFound => CeremonyFailure::ChallengeMismatch,
        E::InvalidRPOrigin | E::CredentialCrossOrigin => CeremonyFailure::OriginMismatch,
        E::InvalidRPIDHash => CeremonyFailure::RpIdMismatch,
        E::UserNotPresent => CeremonyFailure::UserNotPresent,
        E::UserNotVerified => CeremonyFailure::UserNotVerified,
        E::CredentialAlteredAlgFromRequest
        | E::COSEKeyInvalidAlgorithm
        | E::CredentialInsecureCryptography => CeremonyFailure::AlgorithmNotAllowed,
        E::CredentialExcludedFromRequest | E::CredentialAlreadyExists => {
            CeremonyFailure::CredentialExcluded
        }
        _ => CeremonyFailure::InvalidResponse,
    }
}

/// The attested credential data of an attestation object, as the authenticator encoded it.
struct Attested {
    aaguid: [u8; 16],
    public_key: Vec<u8>,
}

/// Reads the AAGUID and the raw COSE key out of an attestation object (WebAuthn §6.1: authData
/// is rpIdHash(32) flags(1) signCount(4) then, with the AT flag, aaguid(16) credIdLen(2)
/// credId credentialPublicKey; the key's CBOR item is delimited by a CBOR decoder).
fn attested_data(attestation_object: &[u8]) -> Option<Attested> {
    let object: serde_cbor_2::Value = serde_cbor_2::from_slice(attestation_object).ok()?;
    let serde_cbor_2::Value::Map(map) = object else {
        return None;
    };
    let auth_data = map.iter().find_map(|(key, value)| match (key, value) {
        (serde_cbor_2::Value::Text(name), serde_cbor_2::Value::Bytes(bytes))
            if name == "authData" =>
        {
            Some(bytes)
        }
        _ => None,
    })?;
    const AT: u8 = 0x40;
    if auth_data.get(32)? & AT == 0 {
        return None;
    }
    let aaguid: [u8; 16] = auth_data.get(37..53)?.try_into().ok()?;
    let id_len = usize::from(u16::from_be_bytes(auth_data.get(53..55)?.try_into().ok()?));
    let key_start = 55 + id_len;
    let rest = auth_data.get(key_start..)?;
    let mut decoder = serde_cbor_2::Deserializer::from_slice(rest);
    let _: serde_cbor_2::Value = serde::Deserialize::deserialize(&mut decoder).ok()?;
    let key_len = decoder.byte_offset();
    Some(Attested {
        aaguid,
        public_key: rest.get(..key_len)?.to_vec(),
    })
}

fn verified(
    credential: Credential,
    attested: Attested,
) -> Result<VerifiedCredential, RelyingPartyError> {
    let encode = |err: String| RelyingPartyError::Internal(err);
    let credential_id =
        CredentialId::new(credential.cred_id.clone()).map_err(|e| encode(e.to_string()))?;
    let transports = credential
        .transports
        .iter()
        .flatten()
        .filter_map(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned))
        .collect();
    let attestation_format = serde_json::to_value(&credential.attestation_format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "none".to_owned());
    let mut verified = VerifiedCredential::new(
        credential_id,
        PublicKey::new(attested.public_key),
        credential.counter,
        Value::Null,
    );
    verified.aaguid = uuid::Uuid::from_bytes(attested.aaguid)
        .hyphenated()
        .to_string();
    verified.backup_eligible = credential.backup_eligible;
    verified.backup_state = credential.backup_state;
    verified.transports = transports;
    verified.attestation_format = attestation_format;
    verified.user_verified = credential.user_verified;
    verified.adapter_credential =
        serde_json::to_value(Passkey::from(credential)).map_err(|e| encode(e.to_string()))?;
    Ok(verified)
}
