//! Golden tests for the wire: every request and response serializes (or parses) exactly as
//! ZITADEL's grpc-gateway shows it in the API docs — field names, order, string `sequence`,
//! `Z` timestamps, `"3600s"` durations.

use chrono::{Duration, TimeZone, Utc};
use passkey_links::prelude::*;
use passkey_links::wire::ProtoDuration;

fn details() -> Details {
    Details {
        sequence: 2,
        creation_date: Utc.with_ymd_and_hms(2025, 4, 3, 9, 33, 15).unwrap()
            + Duration::milliseconds(420),
        change_date: Utc.with_ymd_and_hms(2025, 4, 3, 9, 33, 15).unwrap()
            + Duration::microseconds(420_123),
        resource_owner: "69629023906488334".into(),
    }
}

const DETAILS: &str = r#"{"sequence":"2","creationDate":"2025-04-03T09:33:15.420Z","changeDate":"2025-04-03T09:33:15.420123Z","resourceOwner":"69629023906488334"}"#;

#[test]
fn responses_serialize_exactly() {
    let add = AddPasswordlessRegistrationResponse {
        details: details(),
        link: "https://id.example.com/ui/login/login/passwordless/init?userID=u&orgID=o&codeID=c&code=s".into(),
        expiration: ProtoDuration(Duration::hours(1)),
    };
    assert_eq!(
        serde_json::to_string(&add).unwrap(),
        format!(
            r#"{{"details":{DETAILS},"link":"https://id.example.com/ui/login/login/passwordless/init?userID=u&orgID=o&codeID=c&code=s","expiration":"3600s"}}"#
        )
    );
    let sent: SendPasswordlessLinkResponse = DetailsResponse { details: details() };
    assert_eq!(
        serde_json::to_string(&sent).unwrap(),
        format!(r#"{{"details":{DETAILS}}}"#)
    );
    let v2_code = CreatePasskeyRegistrationLinkResponse {
        details: details(),
        code: Some(PasskeyRegistrationCode {
            id: "123".into(),
            code: "abc".into(),
        }),
    };
    assert_eq!(
        serde_json::to_string(&v2_code).unwrap(),
        format!(r#"{{"details":{DETAILS},"code":{{"id":"123","code":"abc"}}}}"#)
    );
    let v2_sent = CreatePasskeyRegistrationLinkResponse {
        details: details(),
        code: None,
    };
    assert_eq!(
        serde_json::to_string(&v2_sent).unwrap(),
        format!(r#"{{"details":{DETAILS}}}"#)
    );
    let check = CheckCodeResponse {
        details: details(),
        user_id: "u".into(),
        org_id: "o".into(),
        expiration_date: Utc.with_ymd_and_hms(2025, 4, 3, 10, 33, 15).unwrap(),
    };
    assert_eq!(
        serde_json::to_string(&check).unwrap(),
        format!(
            r#"{{"details":{DETAILS},"userId":"u","orgId":"o","expirationDate":"2025-04-03T10:33:15Z"}}"#
        )
    );
    let user = AddUserResponse {
        user_id: "u".into(),
        details: details(),
    };
    assert_eq!(
        serde_json::to_string(&user).unwrap(),
        format!(r#"{{"userId":"u","details":{DETAILS}}}"#)
    );
}

/// The four v2 passkey shapes, as ZITADEL's user service v2 prints them.
#[test]
fn v2_passkey_responses_serialize_exactly() {
    let register = RegisterPasskeyResponse {
        details: details(),
        passkey_id: "pk-1".into(),
        public_key_credential_creation_options: serde_json::json!({
            "publicKey": {"challenge": "AAEC", "rp": {"id": "id.example.com", "name": "ID"}}
        }),
        ceremony_secret: "c-secret".into(),
    };
    assert_eq!(
        serde_json::to_string(&register).unwrap(),
        format!(
            r#"{{"details":{DETAILS},"passkeyId":"pk-1","publicKeyCredentialCreationOptions":{{"publicKey":{{"challenge":"AAEC","rp":{{"id":"id.example.com","name":"ID"}}}}}},"ceremonySecret":"c-secret"}}"#
        )
    );
    assert!(
        !format!("{register:?}").contains("c-secret"),
        "redacted in Debug"
    );
    let verified: VerifyPasskeyRegistrationResponse = DetailsResponse { details: details() };
    assert_eq!(
        serde_json::to_string(&verified).unwrap(),
        format!(r#"{{"details":{DETAILS}}}"#)
    );
    let removed: RemovePasskeyResponse = DetailsResponse { details: details() };
    assert_eq!(
        serde_json::to_string(&removed).unwrap(),
        format!(r#"{{"details":{DETAILS}}}"#)
    );
    let listed = ListPasskeysResponse {
        details: ListDetails {
            total_result: 2,
            processed_sequence: 7,
            timestamp: Utc.with_ymd_and_hms(2025, 4, 3, 9, 33, 15).unwrap(),
        },
        result: vec![
            PasskeySummary {
                id: "pk-1".into(),
                state: passkey_links::domain::PasskeyState::Ready,
                name: "iPhone".into(),
            },
            PasskeySummary {
                id: "pk-2".into(),
                state: passkey_links::domain::PasskeyState::NotReady,
                name: String::new(),
            },
        ],
    };
    assert_eq!(
        serde_json::to_string(&listed).unwrap(),
        r#"{"details":{"totalResult":"2","processedSequence":"7","timestamp":"2025-04-03T09:33:15Z"},"result":[{"id":"pk-1","state":"AUTH_FACTOR_STATE_READY","name":"iPhone"},{"id":"pk-2","state":"AUTH_FACTOR_STATE_NOT_READY","name":""}]}"#
    );
}

#[test]
fn responses_round_trip() {
    let json =
        format!(r#"{{"details":{DETAILS},"link":"https://x.example/l","expiration":"3600s"}}"#);
    let parsed: AddPasswordlessRegistrationResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.details, details());
    assert_eq!(parsed.expiration, ProtoDuration(Duration::hours(1)));
    assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
}

#[test]
fn requests_parse_from_the_documented_bodies() {
    let v2: CreatePasskeyRegistrationLinkRequest = serde_json::from_str(
        r#"{"sendLink":{"urlTemplate":"https://example.com/passkey/register?userID={{.UserID}}&orgID={{.OrgID}}&codeID={{.CodeID}}&code={{.Code}}"}}"#,
    )
    .unwrap();
    assert_eq!(
        v2.send_link.unwrap().url_template.unwrap(),
        "https://example.com/passkey/register?userID={{.UserID}}&orgID={{.OrgID}}&codeID={{.CodeID}}&code={{.Code}}"
    );
    let returned: CreatePasskeyRegistrationLinkRequest =
        serde_json::from_str(r#"{"returnCode":{}}"#).unwrap();
    assert_eq!(returned.return_code, Some(ReturnCode {}));
    let empty: CreatePasskeyRegistrationLinkRequest = serde_json::from_str("{}").unwrap();
    assert!(empty.send_link.is_none() && empty.return_code.is_none());
    let check: CheckCodeRequest =
        serde_json::from_str(r#"{"userId":"u","codeId":"c","code":"s3cr3t"}"#).unwrap();
    assert_eq!((check.user_id.as_str(), check.code_id.as_str()), ("u", "c"));
    assert_eq!(check.code.expose(), "s3cr3t");
    let register: RegisterPasskeyRequest =
        serde_json::from_str(r#"{"code":{"id":"c","code":"s"}}"#).unwrap();
    let code = register.code.unwrap();
    assert_eq!((code.id.as_str(), code.code.expose()), ("c", "s"));
    let verify: VerifyPasskeyRegistrationRequest = serde_json::from_str(
        r#"{"publicKeyCredential":{"id":"x","type":"public-key"},"passkeyName":"Key"}"#,
    )
    .unwrap();
    assert_eq!(verify.passkey_name, "Key");
    assert_eq!(verify.public_key_credential["type"], "public-key");
    let human: AddHumanUserRequest = serde_json::from_str(
        r#"{"userName":"ada","displayName":"Ada","email":"ada@example.com","isEmailVerified":true,"preferredLanguage":"en"}"#,
    )
    .unwrap();
    assert!(human.is_email_verified && human.user_id.is_none());
}

/// Every request accepts the protobuf JSON names and the original proto field names, as
/// protojson does: `{"return_code":{}}` returns the code, it is not silently emailed.
#[test]
fn requests_accept_proto_field_names_too() {
    fn both<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(json: &str, proto: &str) {
        let a: T = serde_json::from_str(json).unwrap();
        let b: T = serde_json::from_str(proto).unwrap();
        assert_eq!(a, b, "{proto}");
    }
    let returned: CreatePasskeyRegistrationLinkRequest =
        serde_json::from_str(r#"{"return_code":{}}"#).unwrap();
    assert_eq!(returned.return_code, Some(ReturnCode {}));
    assert!(returned.send_link.is_none());
    both::<CreatePasskeyRegistrationLinkRequest>(
        r#"{"userId":"u","sendLink":{"urlTemplate":"https://x.example/{{.Code}}"}}"#,
        r#"{"user_id":"u","send_link":{"url_template":"https://x.example/{{.Code}}"}}"#,
    );
    both::<AddPasswordlessRegistrationRequest>(r#"{"userId":"u"}"#, r#"{"user_id":"u"}"#);
    both::<SendPasswordlessRegistrationRequest>(r#"{"userId":"u"}"#, r#"{"user_id":"u"}"#);
    both::<RevokeCodeRequest>(
        r#"{"userId":"u","codeId":"c"}"#,
        r#"{"user_id":"u","code_id":"c"}"#,
    );
    both::<CheckCodeRequest>(
        r#"{"userId":"u","codeId":"c","code":"s"}"#,
        r#"{"user_id":"u","code_id":"c","code":"s"}"#,
    );
    both::<VerifyPasskeyRegistrationRequest>(
        r#"{"userId":"u","passkeyId":"p","publicKeyCredential":{"id":"x"},"passkeyName":"K"}"#,
        r#"{"user_id":"u","passkey_id":"p","public_key_credential":{"id":"x"},"passkey_name":"K"}"#,
    );
    both::<RemovePasskeyRequest>(
        r#"{"userId":"u","passkeyId":"p"}"#,
        r#"{"user_id":"u","passkey_id":"p"}"#,
    );
    both::<ListPasskeysRequest>(r#"{"userId":"u"}"#, r#"{"user_id":"u"}"#);
    both::<AddOrgRequest>(
        r#"{"name":"A","orgId":"o"}"#,
        r#"{"name":"A","org_id":"o"}"#,
    );
    both::<AddHumanUserRequest>(
        r#"{"userId":"u","userName":"ada","displayName":"Ada","email":"a@example.com","isEmailVerified":true,"preferredLanguage":"en"}"#,
        r#"{"user_id":"u","user_name":"ada","display_name":"Ada","email":"a@example.com","is_email_verified":true,"preferred_language":"en"}"#,
    );
    both::<AddMachineUserRequest>(
        r#"{"userId":"u","userName":"bot","name":"Bot"}"#,
        r#"{"user_id":"u","user_name":"bot","name":"Bot"}"#,
    );
    // Both spellings of one field at once is ambiguous: refused, never one silently ignored.
    assert!(
        serde_json::from_str::<CreatePasskeyRegistrationLinkRequest>(
            r#"{"returnCode":{},"return_code":{}}"#
        )
        .is_err()
    );
}

#[test]
fn error_body_matches_the_seed() {
    let err = Error::new(
        ErrorKind::NotFound,
        "PKL-USER-01",
        "Errors.User.NotFound",
        "user not found",
    );
    assert_eq!(
        serde_json::to_string(&err.to_body()).unwrap(),
        r#"{"code":5,"message":"user not found (PKL-USER-01)","details":[{"@type":"type.googleapis.com/zitadel.v1.ErrorDetail","id":"PKL-USER-01","message":"Errors.User.NotFound"}]}"#
    );
}
