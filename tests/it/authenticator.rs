//! A software authenticator (webauthn-authenticator-rs's `SoftPasskey`: a real P-256 key and a
//! real packed self-attestation) playing the browser's part of a ceremony.
#![allow(dead_code)]

use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

/// The relying party the tests run: `id.example.com`.
pub const RP_ID: &str = "id.example.com";
/// Its origin.
pub const ORIGIN: &str = "https://id.example.com";

pub struct Authenticator {
    inner: SoftPasskey,
    origin: Url,
}

impl Authenticator {
    /// An authenticator in a browser on `origin`.
    pub fn on(origin: &str) -> Self {
        Self {
            inner: SoftPasskey::new(true),
            origin: Url::parse(origin).unwrap(),
        }
    }

    /// An authenticator in a browser on the relying party's origin.
    pub fn new() -> Self {
        Self::on(ORIGIN)
    }

    /// Answers `navigator.credentials.create(options)`, returning the `PublicKeyCredential`
    /// JSON a browser posts. The software authenticator stores no resident keys, so the client
    /// drops that instruction (the relying party cannot verify it either; the browser test with
    /// a virtual authenticator covers it).
    pub fn create(&mut self, options: &Value) -> Value {
        self.create_with(options, |_| {})
    }

    /// As [`Authenticator::create`], with the options tampered first.
    pub fn create_with(
        &mut self,
        options: &Value,
        tamper: impl FnOnce(&mut CreationChallengeResponse),
    ) -> Value {
        let mut options: CreationChallengeResponse =
            serde_json::from_value(options.clone()).unwrap();
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
            selection.resident_key = None;
        }
        tamper(&mut options);
        let credential = self
            .inner
            .do_registration(self.origin.clone(), options)
            .unwrap();
        serde_json::to_value(&credential).unwrap()
    }

    /// Answers `navigator.credentials.get(options)`.
    pub fn get(
        &mut self,
        options: RequestChallengeResponse,
    ) -> webauthn_rs_proto::PublicKeyCredential {
        self.inner
            .do_authentication(self.origin.clone(), options)
            .unwrap()
    }
}
