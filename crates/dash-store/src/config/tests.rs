use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn settings(pairs: &[(&str, &str)]) -> Result<DbSettings, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DbSettings::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_match_the_contract() {
    let s = settings(&[]).unwrap();
    assert_eq!(
        s.hosts,
        vec![HostPort {
            host: "localhost".into(),
            port: 5432
        }]
    );
    assert_eq!(
        (s.dbname.as_str(), s.user.as_str(), s.pool_size),
        ("dash", "dash_user", 20)
    );
}

#[test]
fn host_list_with_ports_and_default_port() {
    let s = settings(&[
        ("DATABASE_HOST", "postgres, postgres-replica:5433,[::1]:7"),
        ("DATABASE_PORT", "6000"),
    ])
    .unwrap();
    let got: Vec<String> = s.hosts.iter().map(|h| h.to_string()).collect();
    assert_eq!(got, ["postgres:6000", "postgres-replica:5433", "[::1]:7"]);
}

#[test]
fn url_overrides_everything() {
    let s = settings(&[
        ("DATABASE_HOST", "ignored"),
        (
            "DATABASE_URL",
            "postgresql://u%40x:p%3Aw@h1:1,h2/db1?connect_timeout=3&application_name=t",
        ),
    ])
    .unwrap();
    assert_eq!(s.user, "u@x");
    assert_eq!(s.password.expose(), "p:w");
    assert_eq!(s.hosts.len(), 2);
    assert_eq!(s.hosts[1].port, 5432);
    assert_eq!(s.dbname, "db1");
    assert_eq!(s.connect_timeout, Duration::from_secs(3));
}

#[test]
fn secrets_never_print() {
    let s = settings(&[("DATABASE_PASSWORD", "hunter2")]).unwrap();
    assert!(!format!("{s:?}").contains("hunter2"));
    assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
}

#[test]
fn bad_values_say_what_is_wrong() {
    let e = settings(&[("DATABASE_POOL_SIZE", "0")]).unwrap_err();
    assert!(e.to_string().contains("DATABASE_POOL_SIZE"), "{e}");
    assert_eq!(
        settings(&[("DATABASE_PORT", "99999")]).unwrap_err(),
        ConfigError::BadPort("99999".into())
    );
    assert!(settings(&[("DATABASE_URL", "mysql://x")]).is_err());
    assert!(settings(&[("DATABASE_HOST", " , ")]).is_err());
    assert!(settings(&[("DATABASE_QUERY_TIMEOUT", "soon")]).is_err());
    assert_eq!(
        settings(&[("DATABASE_QUERY_TIMEOUT", "250ms")])
            .unwrap()
            .query_timeout,
        Duration::from_millis(250)
    );
}

proptest! {
    #[test]
    fn host_parser_never_panics(s in ".{0,64}") {
        let _ = parse_hosts(&s, 5432);
    }

    #[test]
    fn url_parser_never_panics(s in "postgres(ql)?://.{0,64}") {
        let _ = DbSettings::default().apply_url(&s);
    }

    #[test]
    fn host_port_roundtrip(host in "[a-z][a-z0-9-]{0,20}", port in 1u16..) {
        let hp = HostPort { host, port };
        prop_assert_eq!(parse_hosts(&hp.to_string(), 1).unwrap(), vec![hp]);
    }
}

#[test]
fn a_secret_in_a_file_round_trips_as_plain_text_while_serialize_masks_it() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Record {
        #[serde(with = "crate::config::secret_in_file")]
        password: Secret,
    }
    let text = serde_json::to_string(&Record {
        password: Secret::new("s3cret"),
    })
    .unwrap();
    assert_eq!(text, r#"{"password":"s3cret"}"#);
    let back: Record = serde_json::from_str(&text).unwrap();
    assert_eq!(back.password.expose(), "s3cret");
    assert_eq!(
        serde_json::to_string(&Secret::new("s3cret")).unwrap(),
        r#""********""#
    );
}
