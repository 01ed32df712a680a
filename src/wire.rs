//! Wire types: the JSON requests and responses of the endpoints, exactly as ZITADEL's
//! grpc-gateway prints them (camelCase, `sequence` as a decimal string, RFC 3339 `Z` timestamps,
//! durations like `"3600s"`).
//!
//! Requests accept the protobuf JSON names (`returnCode`) and the original proto field names
//! (`return_code`), as protojson does; unknown fields are ignored, as grpc-gateway does.
//! Responses that carry a secret (a link or a code) have a redacted `Debug`.

use std::fmt;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use serde_json::Value;

pub use crate::domain::{DirectoryState, PasskeyState};
use crate::secret::Secret;

/// `details` of every answer, from the last applied event of the aggregate the command changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// Stream version after the command.
    #[serde(with = "decimal")]
    pub sequence: u64,
    /// Timestamp of the stream's first event.
    #[serde(with = "timestamp")]
    pub creation_date: DateTime<Utc>,
    /// Timestamp of the last applied event.
    #[serde(with = "timestamp")]
    pub change_date: DateTime<Utc>,
    /// The org owning the aggregate.
    pub resource_owner: String,
}

mod decimal {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Protobuf JSON timestamps: RFC 3339, UTC `Z`, 0/3/6/9 fractional digits.
pub mod timestamp {
    use super::*;

    /// Formats a timestamp as protobuf JSON does.
    pub fn format(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Serializes a timestamp.
    ///
    /// # Errors
    /// Only the serializer's.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    /// Deserializes a timestamp.
    ///
    /// # Errors
    /// When the text is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// A protobuf JSON duration such as `"3600s"` or `"1.500s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoDuration(pub Duration);

impl fmt::Display for ProtoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.num_seconds();
        let nanos = self.0.subsec_nanos().unsigned_abs();
        let sign = if seconds == 0 && self.0.subsec_nanos() < 0 {
            "-"
        } else {
            ""
        };
        match nanos {
            0 => write!(f, "{sign}{seconds}s"),
            n if n % 1_000_000 == 0 => write!(f, "{sign}{seconds}.{:03}s", n / 1_000_000),
            n if n % 1_000 == 0 => write!(f, "{sign}{seconds}.{:06}s", n / 1_000),
            n => write!(f, "{sign}{seconds}.{n:09}s"),
        }
    }
}

impl Serialize for ProtoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProtoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let body = text
            .strip_suffix('s')
            .ok_or_else(|| serde::de::Error::custom("a duration ends with 's'"))?;
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        let negative = whole.starts_with('-');
        let seconds: i64 = whole.parse().map_err(serde::de::Error::custom)?;
        let mut nanos: i64 = 0;
        if !fraction.is_empty() {
            if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return Err(serde::de::Error::custom("bad fractional seconds"));
            }
            nanos = format!("{fraction:0<9}")
                .parse()
                .map_err(serde::de::Error::custom)?;
        }
        let nanos = if negative { -nanos } else { nanos };
        Ok(Self(
            Duration::seconds(seconds) + Duration::nanoseconds(nanos),
        ))
    }
}

/// Mgmt v1 `POST /management/v1/users/{userId}/passwordless/_link` (path parameter only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddPasswordlessRegistrationRequest {
    /// Target user.
    #[serde(alias = "user_id")]
    pub user_id: String,
}

/// Response of AddPasswordlessRegistration and AddMyPasswordlessLink.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddPasswordlessRegistrationResponse {
    /// Details of the code aggregate.
    pub details: Details,
    /// The registration link (carries the secret).
    pub link: String,
    /// The link lifetime, e.g. `"3600s"`.
    pub expiration: ProtoDuration,
}

impl fmt::Debug for AddPasswordlessRegistrationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddPasswordlessRegistrationResponse")
            .field("details", &self.details)
            .field("link", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Auth v1 `POST /auth/v1/users/me/passwordless/_link` answers like AddPasswordlessRegistration.
pub type AddMyPasswordlessLinkResponse = AddPasswordlessRegistrationResponse;

/// Mgmt v1 `POST /management/v1/users/{userId}/passwordless/_send_link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendPasswordlessRegistrationRequest {
    /// Target user.
    #[serde(alias = "user_id")]
    pub user_id: String,
}

/// A response holding only `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsResponse {
    /// Details of the changed aggregate.
    pub details: Details,
}

/// SendPasswordlessRegistration answers with `details` only.
pub type SendPasswordlessRegistrationResponse = DetailsResponse;
/// SendPasswordlessLink (`/auth/v1/users/me/passwordless/_send_link`) answers with `details` only.
pub type SendPasswordlessLinkResponse = DetailsResponse;

/// v2 `sendLink` medium.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendLink {
    /// Optional template with `{{.UserID}}`, `{{.OrgID}}`, `{{.CodeID}}`, `{{.Code}}`.
    #[serde(
        alias = "url_template",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub url_template: Option<String>,
}

/// v2 `returnCode` medium.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReturnCode {}

/// v2 `POST /v2/users/{userId}/passkeys/registration_link`. Neither medium means `sendLink`
/// with the default link; both is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePasskeyRegistrationLinkRequest {
    /// Target user (path parameter).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
    /// Email the link.
    #[serde(alias = "send_link", default, skip_serializing_if = "Option::is_none")]
    pub send_link: Option<SendLink>,
    /// Return the code.
    #[serde(
        alias = "return_code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub return_code: Option<ReturnCode>,
}

/// A returned v2 code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRegistrationCode {
    /// The code id.
    pub id: String,
    /// The secret.
    pub code: String,
}

impl fmt::Debug for PasskeyRegistrationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyRegistrationCode")
            .field("id", &self.id)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// Response of CreatePasskeyRegistrationLink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePasskeyRegistrationLinkResponse {
    /// Details of the code aggregate.
    pub details: Details,
    /// The code, for `returnCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<PasskeyRegistrationCode>,
}

/// Check the code of a link the user opened (no authentication: the code is the credential).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckCodeRequest {
    /// `userID` of the link.
    #[serde(alias = "user_id")]
    pub user_id: String,
    /// `codeID` of the link.
    #[serde(alias = "code_id")]
    pub code_id: String,
    /// `code` of the link.
    pub code: Secret,
}

/// Ask for a fresh link with a dead one (`POST /v1/passkey_links/_renew` in the example
/// server; no authentication: the dead link's secret is the credential).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestFreshLinkRequest {
    /// `userID` of the dead link.
    #[serde(alias = "user_id")]
    pub user_id: String,
    /// `codeID` of the dead link.
    #[serde(alias = "code_id")]
    pub code_id: String,
    /// `code` of the dead link.
    pub code: Secret,
}

/// The same acknowledgement whether or not a link was sent (`{}`): if the dead link could be
/// renewed, a new one is on its way to the address on file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFreshLinkResponse {}

/// A usable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckCodeResponse {
    /// Details of the code aggregate.
    pub details: Details,
    /// The user.
    pub user_id: String,
    /// The user's org.
    pub org_id: String,
    /// When the link stops working.
    #[serde(with = "timestamp")]
    pub expiration_date: DateTime<Utc>,
}

/// A code as a v2 request presents it: `{"id": …, "code": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PresentedCode {
    /// The code id.
    pub id: String,
    /// The secret (redacted in `Debug`).
    pub code: Secret,
}

/// v2 `POST /v2/users/{userId}/passkeys` (RegisterPasskey) with the link's code: starts the
/// WebAuthn ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterPasskeyRequest {
    /// The user (path parameter).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
    /// The code of the registration link.
    #[serde(default)]
    pub code: Option<PresentedCode>,
    /// ZITADEL's authenticator attachment hint; accepted and ignored (passkeys may live on any
    /// authenticator).
    #[serde(default)]
    pub authenticator: Option<String>,
    /// ZITADEL's relying-party domain; accepted and ignored (the relying party is configured).
    #[serde(default)]
    pub domain: Option<String>,
}

/// Response of RegisterPasskey.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterPasskeyResponse {
    /// Details of the user aggregate.
    pub details: Details,
    /// The passkey being registered.
    pub passkey_id: String,
    /// What the browser hands to `navigator.credentials.create` (`{"publicKey": {...}}`).
    pub public_key_credential_creation_options: Value,
    /// The ceremony's secret: the browser posts it back with VerifyPasskeyRegistration. Only
    /// its digest is stored, so nothing read from the store finishes the ceremony.
    pub ceremony_secret: String,
}

impl fmt::Debug for RegisterPasskeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterPasskeyResponse")
            .field("details", &self.details)
            .field("passkey_id", &self.passkey_id)
            .field(
                "public_key_credential_creation_options",
                &self.public_key_credential_creation_options,
            )
            .field("ceremony_secret", &"<redacted>")
            .finish()
    }
}

/// v2 `POST /v2/users/{userId}/passkeys/{passkeyId}` (VerifyPasskeyRegistration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyPasskeyRegistrationRequest {
    /// The user (path parameter).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
    /// The passkey (path parameter).
    #[serde(alias = "passkey_id", default)]
    pub passkey_id: String,
    /// The browser's `PublicKeyCredential`, as JSON.
    #[serde(alias = "public_key_credential")]
    pub public_key_credential: Value,
    /// A name for the passkey (1–200 characters).
    #[serde(alias = "passkey_name")]
    pub passkey_name: String,
    /// The `ceremonySecret` RegisterPasskey answered (required).
    #[serde(alias = "ceremony_secret", default)]
    pub ceremony_secret: Option<Secret>,
}

/// VerifyPasskeyRegistration answers with `details` only.
pub type VerifyPasskeyRegistrationResponse = DetailsResponse;

/// Starts a login with a passkey (`POST /v2/passkeys/login/_start` in the example server):
/// for a named user, the browser may use that user's passkeys; without one, any discoverable
/// passkey (the user picks it; conditional UI).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPasskeyLoginRequest {
    /// The user, if the login names one.
    #[serde(alias = "user_id", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// A started login: what the browser hands to `navigator.credentials.get`, and the login's
/// state — opaque, sealed, single-use, valid until `expiresAt` — to hand back with the
/// browser's answer (keep it in the session, or give it to the browser).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPasskeyLoginResponse {
    /// `{"publicKey": {...}}` for `navigator.credentials.get` (add `mediation: "conditional"`
    /// on the page for conditional UI).
    pub public_key_credential_request_options: Value,
    /// The login's state.
    pub login_state: String,
    /// When the login's state expires.
    #[serde(with = "timestamp")]
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for StartPasskeyLoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartPasskeyLoginResponse")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Finishes a login (`POST /v2/passkeys/login/_finish` in the example server).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishPasskeyLoginRequest {
    /// The state the login's start answered.
    #[serde(alias = "login_state")]
    pub login_state: String,
    /// The browser's `PublicKeyCredential` (an assertion), as JSON.
    #[serde(alias = "public_key_credential")]
    pub public_key_credential: Value,
}

impl std::fmt::Debug for FinishPasskeyLoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishPasskeyLoginRequest")
            .finish_non_exhaustive()
    }
}

/// A login that succeeded: who logged in, with which passkey — what an embedder needs to create
/// its own session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishPasskeyLoginResponse {
    /// Details of the user aggregate (the login's event).
    pub details: Details,
    /// The user.
    pub user_id: String,
    /// The user's org.
    pub org_id: String,
    /// The passkey used.
    pub passkey_id: String,
}

/// v2 `POST /v2/users/{userId}/passkeys/_search` (ListPasskeys).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPasskeysRequest {
    /// The user (path parameter).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
}

/// v2 list details: how many results, as of which sequence and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDetails {
    /// Number of results.
    #[serde(with = "decimal")]
    pub total_result: u64,
    /// The user stream's version the list was read at.
    #[serde(with = "decimal")]
    pub processed_sequence: u64,
    /// The time of that version's event.
    #[serde(with = "timestamp")]
    pub timestamp: DateTime<Utc>,
}

impl ListDetails {
    /// The details of a list of `total` results read as of the stream `details` describe.
    pub fn of(details: &Details, total: usize) -> Self {
        Self {
            total_result: total as u64,
            processed_sequence: details.sequence,
            timestamp: details.change_date,
        }
    }
}

/// One passkey of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeySummary {
    /// The passkey id.
    pub id: String,
    /// `AUTH_FACTOR_STATE_READY` or `AUTH_FACTOR_STATE_NOT_READY`.
    pub state: PasskeyState,
    /// Its name.
    pub name: String,
}

/// Response of ListPasskeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPasskeysResponse {
    /// List details.
    pub details: ListDetails,
    /// The passkeys.
    pub result: Vec<PasskeySummary>,
}

/// v2 `DELETE /v2/users/{userId}/passkeys/{passkeyId}` (RemovePasskey; path parameters only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovePasskeyRequest {
    /// The user.
    #[serde(alias = "user_id", default)]
    pub user_id: String,
    /// The passkey.
    #[serde(alias = "passkey_id", default)]
    pub passkey_id: String,
}

/// RemovePasskey answers with `details` only.
pub type RemovePasskeyResponse = DetailsResponse;

/// Revoke a code.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeCodeRequest {
    /// The user.
    #[serde(alias = "user_id")]
    pub user_id: String,
    /// The code, by its reference (what live links and audit trails show).
    #[serde(
        alias = "code_reference",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub code_reference: Option<String>,
    /// The code, by its id (from its link: the link's holder revoking it).
    #[serde(alias = "code_id", default, skip_serializing_if = "Option::is_none")]
    pub code_id: Option<String>,
}

/// Deliver again a code whose delivery failed (`POST …/passwordless/{codeReference}/_redeliver`
/// in the example server): the same link, to the user's verified address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedeliverCodeRequest {
    /// The user.
    #[serde(alias = "user_id")]
    pub user_id: String,
    /// The code, by its reference.
    #[serde(alias = "code_reference")]
    pub code_reference: String,
}

/// Create an org.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddOrgRequest {
    /// Display name.
    pub name: String,
    /// The id to give the org; a fresh one when absent.
    #[serde(alias = "org_id", default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

/// A created org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddOrgResponse {
    /// The new org's id.
    pub org_id: String,
    /// Details of the org aggregate.
    pub details: Details,
}

/// Create a human user in the org context.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddHumanUserRequest {
    /// The id to give the user; a fresh one when absent.
    #[serde(alias = "user_id", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Login name.
    #[serde(alias = "user_name")]
    pub user_name: String,
    /// Display name.
    #[serde(alias = "display_name")]
    pub display_name: String,
    /// Email address.
    pub email: String,
    /// Whether the email is verified already.
    #[serde(alias = "is_email_verified", default)]
    pub is_email_verified: bool,
    /// Preferred language tag.
    #[serde(
        alias = "preferred_language",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preferred_language: Option<String>,
}

/// Create a machine user in the org context.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddMachineUserRequest {
    /// The id to give the user; a fresh one when absent.
    #[serde(alias = "user_id", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Login name.
    #[serde(alias = "user_name")]
    pub user_name: String,
    /// Display name.
    pub name: String,
}

/// Bring an org in step with the directory (`PUT /v1/orgs/{orgId}` in the example server).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsureOrgRequest {
    /// The org's id (the directory's; path parameter in the example).
    #[serde(alias = "org_id", default)]
    pub org_id: String,
    /// Its name.
    pub name: String,
    /// `ACTIVE` (default) or `INACTIVE`.
    #[serde(default)]
    pub state: DirectoryState,
}

/// Bring a human user in step with the directory (`PUT /v1/orgs/{orgId}/users/{userId}` in
/// the example server).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsureHumanUserRequest {
    /// The user's id (the directory's; path parameter in the example).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
    /// Login name.
    #[serde(alias = "user_name")]
    pub user_name: String,
    /// Display name.
    #[serde(alias = "display_name")]
    pub display_name: String,
    /// Email address.
    pub email: String,
    /// Whether the directory verified the address.
    #[serde(alias = "is_email_verified", default)]
    pub is_email_verified: bool,
    /// Preferred language tag.
    #[serde(
        alias = "preferred_language",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preferred_language: Option<String>,
    /// `ACTIVE` (default), `INACTIVE` or `LOCKED`.
    #[serde(default)]
    pub state: DirectoryState,
}

/// Bring a machine user in step with the directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsureMachineUserRequest {
    /// The user's id (the directory's).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
    /// Login name.
    #[serde(alias = "user_name")]
    pub user_name: String,
    /// Display name.
    pub name: String,
    /// `ACTIVE` (default), `INACTIVE` or `LOCKED`.
    #[serde(default)]
    pub state: DirectoryState,
}

/// What an ensure did: the stream's details, and whether anything was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsureResponse {
    /// Details of the org or user stream.
    pub details: Details,
    /// Whether the directory's view differed (and was appended).
    pub changed: bool,
}

/// Read a user back (ZITADEL user service v2 GetUserByID: `GET /v2/users/{userId}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetUserRequest {
    /// The user.
    #[serde(alias = "user_id", default)]
    pub user_id: String,
}

/// A user as GetUserByID answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetUserResponse {
    /// Details of the user stream.
    pub details: Details,
    /// The user.
    pub user: UserView,
}

/// A user's public view (ZITADEL v2's `User`, the fields this library keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Its id.
    pub user_id: String,
    /// `USER_STATE_ACTIVE`, `USER_STATE_INACTIVE`, `USER_STATE_LOCKED` or `USER_STATE_INITIAL`.
    pub state: String,
    /// Login name.
    pub username: String,
    /// The org it belongs to.
    pub organization_id: String,
    /// A human's profile and email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<HumanView>,
    /// A machine's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineView>,
}

/// A human user's profile and email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HumanView {
    /// Names and language.
    pub profile: ProfileView,
    /// The address on file.
    pub email: EmailView,
}

/// A human's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    /// Display name.
    pub display_name: String,
    /// Preferred language tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
}

/// An email address and whether it is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailView {
    /// The address.
    pub email: String,
    /// Whether it is verified.
    pub is_verified: bool,
}

/// A machine user's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineView {
    /// Its name.
    pub name: String,
}

/// Read an org back (`GET /v1/orgs/{orgId}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOrgRequest {
    /// The org.
    #[serde(alias = "org_id", default)]
    pub org_id: String,
}

/// An org as it is read back (ZITADEL v1 GetOrgByID's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOrgResponse {
    /// The org.
    pub org: OrgView,
}

/// An org's public view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    /// Its id.
    pub id: String,
    /// Details of the org stream.
    pub details: Details,
    /// `ORG_STATE_ACTIVE` or `ORG_STATE_INACTIVE`.
    pub state: String,
    /// Its name.
    pub name: String,
}

/// A created user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddUserResponse {
    /// The new user's id.
    pub user_id: String,
    /// Details of the user aggregate.
    pub details: Details,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_protobuf() {
        assert_eq!(ProtoDuration(Duration::hours(1)).to_string(), "3600s");
        assert_eq!(
            ProtoDuration(Duration::milliseconds(1500)).to_string(),
            "1.500s"
        );
        assert_eq!(
            ProtoDuration(Duration::microseconds(1)).to_string(),
            "0.000001s"
        );
        let back: ProtoDuration = serde_json::from_str("\"1.5s\"").unwrap();
        assert_eq!(back.0, Duration::milliseconds(1500));
    }
}

/// A user's live links (`GET /v2/users/{userId}/passkeys/registration_links`; path parameter
/// only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListLiveLinksRequest {
    /// The user (path parameter).
    #[serde(alias = "user_id", default)]
    pub user_id: String,
}

/// One live registration link — or one whose delivery failed, until it expires: enough for an
/// admin UI, for revoking it and for redelivering it. Never the secret, never the code id (only
/// its reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveLink {
    /// The code's reference (what revoking and redelivering name).
    pub code_reference: String,
    /// When it was issued.
    #[serde(with = "timestamp")]
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    #[serde(with = "timestamp")]
    pub expires_at: DateTime<Utc>,
    /// `RETURNED` (handed to the caller), `REQUESTED` (waiting for delivery), `SENT`, or
    /// `FAILED` (its delivery failed: see `failure`; it can be redelivered).
    pub delivery: String,
    /// Why its delivery failed (`unavailable`, `rejected`, `expired`, `no_longer_usable`,
    /// `unrenderable`), for `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Failed checks so far.
    pub failed_checks: u32,
}

/// Response of the live-links query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListLiveLinksResponse {
    /// List details (as of the user stream's version).
    pub details: ListDetails,
    /// The live links, newest first.
    pub result: Vec<LiveLink>,
}

/// A page of an audit trail: the user's (`userId`) or the org's (`orgId`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAuditTrailRequest {
    /// The user whose trail (exactly one of `userId` and `orgId`).
    #[serde(alias = "user_id", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The org whose trail.
    #[serde(alias = "org_id", default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Where the previous page ended (its `nextPageToken`); none: the newest entries.
    #[serde(alias = "page_token", default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Entries per page (1–1000; default 100).
    #[serde(alias = "page_size", default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// One audit-trail entry: an event without secrets, secret digests, key material or ceremony
/// state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Its global feed position.
    #[serde(with = "decimal")]
    pub position: u64,
    /// `org`, `user`, `code` or `credential`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Its version in the aggregate's stream.
    #[serde(with = "decimal")]
    pub sequence: u64,
    /// The stored event type.
    pub event_type: String,
    /// When it happened.
    #[serde(with = "timestamp")]
    pub creation_date: DateTime<Utc>,
    /// The payload's fields an admin may see.
    pub payload: Value,
}

/// Response of an audit-trail query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAuditTrailResponse {
    /// The entries, newest first.
    pub result: Vec<AuditEvent>,
    /// Pass as `pageToken` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
