//! Logging in with an enrolled passkey, through the relying party: a login starts (request
//! options for `navigator.credentials.get`, and a sealed, single-use state that expires) and
//! finishes with the browser's assertion — verified by the relying party, judged against the
//! credential's user and org as they stand, and recorded on the user either way, in one atomic
//! append against the versions read. A refused login answers only "login failed"
//! (`PKL-LOGIN-01`); the precise reason is in the user's events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access::Guard;
use super::{Op, PasskeyLinks};
use crate::domain::{
    DomainError, FinishPasskeyLogin, LOGIN_LIFETIME, LoginFailure, LoginId, ReadLogin,
    ReadLoginUser, UserKind,
};
use crate::error::Error;
use crate::ids::{StreamId, UserId};
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::{AuthenticationRequest, RelyingParty};
use crate::store::EventStore;
use crate::wire::{
    FinishPasskeyLoginRequest, FinishPasskeyLoginResponse, StartPasskeyLoginRequest,
    StartPasskeyLoginResponse,
};

/// What a login state is sealed for (a state sealed for anything else never opens as one).
const LOGIN_STATE: &str = "passkey-links login state v1";
/// What stands in for the credentials of a user a login names who has none (or does not exist),
/// so that the answer looks the same.
const UNKNOWN_USER_CREDENTIAL: &str = "passkey-links unknown user credential v1";

/// The largest `publicKeyCredential` (as JSON) a login or a registration accepts; a larger one
/// is bad input. Real responses weigh a few kilobytes.
pub const MAX_CREDENTIAL_JSON: usize = 64 * 1024;

/// A login state's content, sealed under the deployment's keys.
#[derive(Serialize, Deserialize)]
struct LoginState {
    id: LoginId,
    #[serde(rename = "exp")]
    expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<UserId>,
    /// The relying party's own state.
    rp: Value,
}

/// Whether `credential` (the browser's JSON) is within [`MAX_CREDENTIAL_JSON`].
pub(super) fn within_size(credential: &Value) -> Result<(), Error> {
    let mut counter = ByteCounter(0);
    let _ = serde_json::to_writer(&mut counter, credential);
    if counter.0 > MAX_CREDENTIAL_JSON {
        return Err(
            DomainError::InvalidArgument("publicKeyCredential is larger than 64 KiB").into(),
        );
    }
    Ok(())
}

/// Counts what is written, keeps nothing.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        if self.0 > MAX_CREDENTIAL_JSON {
            // Stop writing a huge value early: the size is decided.
            return Err(std::io::Error::other("too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// Starts a login with a passkey: for a named user the browser may use that user's passkeys
    /// (`allowCredentials`); without one, any discoverable passkey (conditional UI). A named
    /// user who does not exist, or has no passkey, gets the same answer with a credential no
    /// authenticator holds: the start reveals nothing about users. No authentication: the
    /// login is the authentication.
    ///
    /// # Errors
    /// InvalidArgument (a malformed user id), FailedPrecondition (no relying party),
    /// Unavailable.
    pub async fn start_passkey_login(
        &self,
        request: StartPasskeyLoginRequest,
    ) -> Result<StartPasskeyLoginResponse, Error> {
        let op = Op::new("passkey_links.start_passkey_login")
            .user(request.user_id.as_deref().unwrap_or("-"));
        self.traced(op, async {
            let named = request.user_id.map(UserId::new).transpose()?;
            let credentials = match &named {
                Some(user_id) => {
                    let read = ReadLoginUser {
                        user_id: user_id.clone(),
                    };
                    let read = self.execute(&read, &Guard::Open).await?;
                    read.view()
                        .user(user_id)
                        .ok()
                        .filter(|user| user.exists() && user.kind() == Some(UserKind::Human))
                        .map(|user| {
                            user.passkeys()
                                .iter()
                                .map(|passkey| passkey.credential.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                }
                None => Vec::new(),
            };
            let stand_in = named.as_ref().filter(|_| credentials.is_empty());
            let request = AuthenticationRequest::new(credentials, self.config.user_verification());
            let started = self.relying_party.start_authentication(&request).await?;
            let mut options = started.request_options;
            if let Some(user_id) = stand_in {
                self.stand_in_credential(&mut options, user_id);
            }
            let mut id = [0u8; 16];
            self.random.fill_bytes(&mut id);
            let expires_at = self.now() + LOGIN_LIFETIME;
            let state = LoginState {
                id: LoginId::from_random(id),
                expires_at,
                user: named,
                rp: started.state,
            };
            let payload = serde_json::to_vec(&state)
                .map_err(|err| Error::internal(format!("login state: {err}")))?;
            Ok(StartPasskeyLoginResponse {
                public_key_credential_request_options: options,
                login_state: self.keys.seal(LOGIN_STATE, &payload),
                expires_at,
            })
        })
        .await
    }

    /// Lists, as the only credential a named user without passkeys may use, one derived from
    /// the deployment's key and the user id: the same on every start and every instance, held
    /// by no authenticator, and not to be told from a real one.
    fn stand_in_credential(&self, options: &mut Value, user_id: &UserId) {
        use base64::Engine as _;
        let (_, key) = self.keys.current();
        let id = key.mac(UNKNOWN_USER_CREDENTIAL, &[user_id.as_str().as_bytes()]);
        let credential = serde_json::json!({
            "type": "public-key",
            "id": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
        });
        if let Some(public_key) = options.get_mut("publicKey").and_then(Value::as_object_mut) {
            public_key.insert("allowCredentials".into(), Value::Array(vec![credential]));
        }
    }

    /// Finishes a login with the browser's assertion: the relying party verifies it against
    /// the login's state and the credential as stored; the login stands only if the state is
    /// unused and unexpired, the user handle is the credential's user's, the user is a human
    /// user neither locked, deactivated nor removed, its org active, and the signature counter
    /// grew (unless the policy accepts a regression). Success and failure are recorded on the
    /// user. The answer names the user, org and passkey for the embedder's own session.
    ///
    /// # Errors
    /// Unauthenticated `PKL-LOGIN-01` for every refused login (whatever the reason: no oracle),
    /// InvalidArgument for a `publicKeyCredential` that is not an assertion or exceeds
    /// [`MAX_CREDENTIAL_JSON`] (nothing recorded), Unavailable.
    pub async fn finish_passkey_login(
        &self,
        request: FinishPasskeyLoginRequest,
    ) -> Result<FinishPasskeyLoginResponse, Error> {
        let op = Op::new("passkey_links.finish_passkey_login");
        self.traced(op, async {
            within_size(&request.public_key_credential)?;
            let claim = self
                .relying_party
                .identify_assertion(&request.public_key_credential)
                .map_err(|_| {
                    DomainError::InvalidArgument("publicKeyCredential is not an assertion")
                })?;
            let state: LoginState = self
                .keys
                .open(LOGIN_STATE, &request.login_state)
                .and_then(|payload| serde_json::from_slice(&payload).ok())
                .ok_or(DomainError::LoginFailed(LoginFailure::StateExpired))?;
            let read = ReadLogin {
                credential_id: claim.credential_id.clone(),
            };
            let read = self.execute(&read, &Guard::Open).await?;
            let view = read.view();
            let stored = view
                .credential(&claim.credential_id)
                .ok()
                .and_then(|claimed| claimed.claimed_by())
                .and_then(|user_id| view.user(user_id).ok())
                .and_then(|user| user.passkey_by_credential(&claim.credential_id))
                .map(|passkey| passkey.credential.clone());
            let verification = match &stored {
                Some(credential) => Some(
                    self.relying_party
                        .finish_authentication(
                            &state.rp,
                            &request.public_key_credential,
                            credential,
                        )
                        .await?,
                ),
                None => None,
            };
            let decision = FinishPasskeyLogin {
                credential_id: claim.credential_id.clone(),
                user_handle: claim.user_handle,
                named_user: state.user,
                login_id: state.id,
                login_expires_at: state.expires_at,
                verification,
            };
            let executed = self.execute(&decision, &Guard::Open).await?;
            let view = executed.view();
            let user_id = view
                .credential(&claim.credential_id)
                .ok()
                .and_then(|claimed| claimed.claimed_by().cloned())
                .ok_or_else(|| Error::internal("a login without its credential's user"))?;
            let user = view
                .user(&user_id)
                .map_err(|_| Error::internal("a login without its user"))?;
            let passkey = user
                .passkey_by_credential(&claim.credential_id)
                .ok_or_else(|| Error::internal("a login without its passkey"))?;
            let org_id = user
                .org_id()
                .ok_or_else(|| Error::internal("a login without its org"))?;
            Ok(FinishPasskeyLoginResponse {
                details: executed.details(&StreamId::user(&user_id))?,
                user_id: user_id.as_str().to_owned(),
                org_id: org_id.as_str().to_owned(),
                passkey_id: passkey.id.as_str().to_owned(),
            })
        })
        .await
    }
}
