//! TLS to PostgreSQL: a throwaway server that accepts TLS connections only, with a certificate
//! signed by a throwaway certificate authority.

#[cfg(not(feature = "postgres-rustls"))]
#[test]
fn postgres_tls() {
    crate::pg::skipped("built without the `postgres-rustls` feature");
}

#[cfg(feature = "postgres-rustls")]
mod with_tls {
    use std::path::Path;

    use passkey_links::ids::{AggregateKind, StreamId};
    use passkey_links::store::postgres::{ConnectOptions, PostgresStore, Tls, parse_config};
    use passkey_links::store::{EventStore, StoreError};
    use passkey_links::{Error, ErrorKind};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use crate::own_server::OwnServer;

    /// A certificate authority and a server certificate for 127.0.0.1 it signed.
    struct Pki {
        ca_pem: String,
        server_pem: String,
        server_key_pem: String,
    }

    fn new_pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let server_pem = server.signed_by(&server_key, &issuer).unwrap().pem();
        Pki {
            ca_pem,
            server_pem,
            server_key_pem: server_key.serialize_pem(),
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn options(tls: Tls) -> ConnectOptions {
        ConnectOptions::default()
            .max_connections(2)
            .deadline(std::time::Duration::from_secs(5))
            .tls(tls)
    }

    /// The server refuses plain TCP connections; `sslmode=require` without a TLS connector, and
    /// TLS with roots that do not trust the server, are configuration faults (not retryable);
    /// with the server's CA the store migrates, appends and reads over an encrypted session.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_with_a_private_certificate_authority() {
        let pki = new_pki();
        let port = free_port();
        let settings = [
            format!("listen_addresses = '127.0.0.1'\nport = {port}"),
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'".to_owned(),
        ];
        let prepare = |data: &Path| {
            std::fs::write(data.join("server.crt"), &pki.server_pem).unwrap();
            let key = data.join("server.key");
            std::fs::write(&key, &pki.server_key_pem).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
        };
        let Some(_server) = OwnServer::start(&settings, prepare) else {
            return;
        };
        let base = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
        let stream = StreamId::new(AggregateKind::User, "u1").unwrap();

        // Plain TCP: the server's rules refuse it.
        let plain = PostgresStore::connect_with(
            parse_config(&format!("{base} sslmode=disable")).unwrap(),
            options(Tls::None),
        )
        .unwrap();
        let err = plain.read(&stream, 0).await.expect_err("plain TCP refused");
        assert!(
            matches!(&err, StoreError::Misconfigured(m) if m.contains("28000")),
            "{err:?}"
        );

        // TLS required, but no TLS connector.
        let no_connector = PostgresStore::connect_with(
            parse_config(&format!("{base} sslmode=require")).unwrap(),
            options(Tls::None),
        )
        .unwrap();
        let err = no_connector
            .read(&stream, 0)
            .await
            .expect_err("no TLS connector");
        assert!(
            matches!(&err, StoreError::Misconfigured(m) if m.contains("TLS")),
            "{err:?}"
        );
        let public = Error::from(err);
        assert_eq!(public.kind(), ErrorKind::FailedPrecondition);
        assert!(!public.kind().is_retryable());

        // TLS with roots that do not include the server's CA.
        let stranger = new_pki();
        let untrusting = PostgresStore::connect_with(
            parse_config(&format!("{base} sslmode=require")).unwrap(),
            options(Tls::rustls_trusting_pem(stranger.ca_pem.as_bytes()).unwrap()),
        )
        .unwrap();
        let err = untrusting
            .read(&stream, 0)
            .await
            .expect_err("an untrusted certificate");
        assert!(
            matches!(&err, StoreError::Misconfigured(m) if m.contains("certificate") || m.contains("Certificate")),
            "{err:?}"
        );

        // The server's CA: the store works, and the session is encrypted.
        let store = PostgresStore::connect_with(
            parse_config(&format!(
                "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
            ))
            .unwrap(),
            options(Tls::rustls_trusting_pem(pki.ca_pem.as_bytes()).unwrap()),
        )
        .unwrap();
        store.migrate().await.unwrap();
        let batch =
            passkey_links::store::AppendBatch::new(vec![passkey_links::store::StreamAppend {
                stream: stream.clone(),
                expected: passkey_links::store::ExpectedVersion::NoStream,
                events: vec![
                    passkey_links::store::NewEvent::new(
                        "user.human.added",
                        1,
                        &serde_json::json!({}),
                        chrono::Utc::now(),
                    )
                    .unwrap(),
                ],
            }])
            .unwrap();
        store.append(batch).await.unwrap();
        assert_eq!(store.read(&stream, 0).await.unwrap().len(), 1);
        let client = store.pool().get().await.unwrap();
        let encrypted: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(encrypted, "the session runs over TLS");

        // A missing or empty root bundle is a configuration fault at once.
        assert!(matches!(
            Tls::rustls_trusting_pem(b"not a certificate"),
            Err(StoreError::Misconfigured(_))
        ));
    }
}
