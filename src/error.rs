//! The one public error type, its kinds and its wire body.
//!
//! Every failure an embedder sees is an [`Error`]: a [`ErrorKind`] (which maps to a gRPC code and
//! to the HTTP status grpc-gateway uses), a stable error id, a ZITADEL-style message key and a
//! human message. None of them ever contains a secret.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The class of an error, with its gRPC code and HTTP status.
///
/// How to handle each kind:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request is malformed (bad id, template, email, or a wrong/unusable code). Fix the
    /// request; do not retry it unchanged.
    InvalidArgument,
    /// The user, org or code does not exist (or is outside the caller's org context).
    NotFound,
    /// The thing to create exists already (org, user, claimed passkey credential id).
    AlreadyExists,
    /// The caller lacks the permission in the target user's org.
    PermissionDenied,
    /// A rate limit was hit; retry after the window has passed.
    ResourceExhausted,
    /// The target is in the wrong state (inactive, locked, machine user, unverified email).
    FailedPrecondition,
    /// Concurrent writers kept conflicting beyond the retry budget; retrying is safe.
    Aborted,
    /// A bug or corrupted stored data; needs an operator.
    Internal,
    /// A dependency (store, notifier) is unreachable; retrying later is safe.
    Unavailable,
    /// No authenticated caller.
    Unauthenticated,
}

impl ErrorKind {
    /// The gRPC status code.
    pub const fn grpc_code(self) -> i32 {
        match self {
            Self::InvalidArgument => 3,
            Self::NotFound => 5,
            Self::AlreadyExists => 6,
            Self::PermissionDenied => 7,
            Self::ResourceExhausted => 8,
            Self::FailedPrecondition => 9,
            Self::Aborted => 10,
            Self::Internal => 13,
            Self::Unavailable => 14,
            Self::Unauthenticated => 16,
        }
    }

    /// The HTTP status grpc-gateway answers with for this gRPC code.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument | Self::FailedPrecondition => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Aborted => 409,
            Self::ResourceExhausted => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Aborted | Self::Unavailable | Self::ResourceExhausted
        )
    }
}

/// The public error: kind, stable id, message key and message.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    id: &'static str,
    key: &'static str,
    message: Cow<'static, str>,
}

impl Error {
    /// Builds an error. `id` must be stable across releases; `key` is a ZITADEL-style message
    /// key such as `Errors.User.NotFound`. The message must never contain a secret.
    pub fn new(
        kind: ErrorKind,
        id: &'static str,
        key: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            kind,
            id,
            key,
            message: message.into(),
        }
    }

    /// The caller is not authenticated.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            "PKL-AUTH-01",
            "Errors.Token.Invalid",
            "no authenticated caller",
        )
    }

    /// The caller lacks a permission.
    pub fn permission_denied(permission: &str) -> Self {
        Self::new(
            ErrorKind::PermissionDenied,
            "PKL-AUTH-02",
            "Errors.PermissionDenied",
            format!("permission {permission} missing in the user's organization"),
        )
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable error id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The message key (`Errors.…`).
    pub fn message_key(&self) -> &'static str {
        self.key
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The wire body of SPEC §5.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.kind.grpc_code(),
            message: format!("{} ({})", self.message, self.id),
            details: vec![ErrorDetail {
                type_url: ERROR_DETAIL_TYPE.to_owned(),
                id: self.id.to_owned(),
                message: self.key.to_owned(),
            }],
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("key", &self.key)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (kind {:?}, {}, {})",
            self.message, self.kind, self.key, self.id
        )
    }
}

impl std::error::Error for Error {}

/// The `@type` of ZITADEL's error detail.
pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

/// The error body: `{"code":5,"message":"…","details":[{"@type":…,"id":…,"message":…}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The gRPC code.
    pub code: i32,
    /// Human-readable message.
    pub message: String,
    /// One ZITADEL error detail.
    pub details: Vec<ErrorDetail>,
}

/// One `zitadel.v1.ErrorDetail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Always [`ERROR_DETAIL_TYPE`].
    #[serde(rename = "@type")]
    pub type_url: String,
    /// The stable error id.
    pub id: String,
    /// The message key.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_seed_shape() {
        let err = Error::new(
            ErrorKind::NotFound,
            "PKL-USER-01",
            "Errors.User.NotFound",
            "user not found",
        );
        let json = serde_json::to_value(err.to_body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": 5,
                "message": "user not found (PKL-USER-01)",
                "details": [{
                    "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                    "id": "PKL-USER-01",
                    "message": "Errors.User.NotFound"
                }]
            })
        );
    }

    #[test]
    fn kinds_map_like_grpc_gateway() {
        assert_eq!(ErrorKind::FailedPrecondition.http_status(), 400);
        assert_eq!(ErrorKind::FailedPrecondition.grpc_code(), 9);
        assert_eq!(ErrorKind::ResourceExhausted.http_status(), 429);
        assert_eq!(ErrorKind::Unauthenticated.grpc_code(), 16);
    }
}
