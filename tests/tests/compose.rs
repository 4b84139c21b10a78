//! compose.yaml describes a deployment that lines up with the gateway's
//! config. No Docker engine runs here, so the file is validated against the
//! Compose specification (`compose_spec`) and cross-checked by hand.

use portcullis::config::{split_host_port, Config};
use portcullis_e2e::root;
use serde_yaml::Value;

fn compose() -> (String, Value) {
    let text = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    let v: Value = serde_yaml::from_str(&text).unwrap();
    (text, v)
}

fn container_ports(service: &Value) -> Vec<u16> {
    service["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .filter_map(|p| p.rsplit(':').next().and_then(|c| c.parse().ok()))
        .collect()
}

/// Host path mounted at `target` in `service`.
fn mount_source(service: &Value, target: &str) -> Option<String> {
    service["volumes"]
        .as_sequence()?
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|v| {
            let mut parts = v.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (dst == target).then(|| src.to_string())
        })
}

#[test]
fn compose_file_is_valid_per_the_compose_spec() {
    let (text, _) = compose();
    let parsed: Result<compose_spec::Compose, _> = serde_yaml::from_str(&text);
    assert!(
        parsed.is_ok(),
        "compose.yaml does not follow the Compose spec: {:?}",
        parsed.err()
    );
}

#[test]
fn gateway_config_lines_up_with_the_services() {
    let (_, c) = compose();
    let services = &c["services"];
    for name in ["idp", "postgres", "gateway", "approvals", "smtp"] {
        assert!(!services[name].is_null(), "service {name} missing");
    }
    let gw = &services["gateway"];
    let cfg_src =
        mount_source(gw, "/etc/portcullis/portcullis.toml").expect("gateway config mount");
    let cfg_path = root().join(cfg_src.trim_start_matches("./"));
    let cfg = Config::load(&cfg_path).unwrap_or_else(|e| panic!("{e}"));

    // Listener ports are published.
    let ports = container_ports(gw);
    for addr in [&cfg.gateway.listen, &cfg.gateway.admin_listen] {
        let (_, port) = split_host_port(addr).unwrap();
        assert!(
            ports.contains(&port),
            "gateway port {port} not published: {ports:?}"
        );
    }
    // Policy directory is mounted from the repository's policies/.
    assert_eq!(
        mount_source(gw, cfg.policy.dir.to_str().unwrap()).as_deref(),
        Some("./policies")
    );
    assert!(root().join("policies/portcullis.rego").exists());
    // TLS files live in a mounted directory.
    let tls_dir = cfg
        .gateway
        .tls_cert
        .as_ref()
        .unwrap()
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        mount_source(gw, &tls_dir).is_some(),
        "TLS dir {tls_dir} not mounted"
    );

    // Upstream is the postgres service, its database and user.
    let conn = &cfg.connections[0];
    let (host, port) = split_host_port(&conn.upstream).unwrap();
    assert_eq!(host, "postgres");
    assert_eq!(port, 5432);
    let pg = &services["postgres"];
    assert_eq!(
        pg["environment"]["POSTGRES_DB"].as_str(),
        Some(conn.database())
    );
    assert_eq!(
        pg["environment"]["POSTGRES_USER"].as_str(),
        Some(conn.user.as_str())
    );
    // The credential file is a secret both services receive.
    let pw = conn
        .password_file
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let secret = pw.trim_start_matches("/run/secrets/");
    for svc in [gw, pg] {
        let s = svc["secrets"].as_sequence().unwrap();
        assert!(
            s.iter().any(|x| x.as_str() == Some(secret)),
            "secret {secret} not given"
        );
    }
    let secret_file = c["secrets"][secret]["file"].as_str().unwrap();
    assert!(root().join(secret_file.trim_start_matches("./")).exists());

    // The issuer is the idp service; approvals is the approvals service.
    let issuer = &cfg.identity.issuers[0].issuer;
    let idp_port = container_ports(&services["idp"])[0];
    assert!(
        issuer.starts_with(&format!("http://idp:{idp_port}/")),
        "{issuer}"
    );
    let approvals = cfg.approvals.url.as_deref().unwrap();
    let (_, ap) = split_host_port(approvals.trim_start_matches("http://")).unwrap();
    assert!(approvals.starts_with("http://approvals:"));
    assert!(container_ports(&services["approvals"]).contains(&ap));
    // Realm import file exists.
    let realm = mount_source(&services["idp"], "/opt/keycloak/data/import/realm.json").unwrap();
    assert!(root().join(realm.trim_start_matches("./")).exists());
}

#[test]
fn approvals_config_lines_up_with_the_gateway() {
    let (_, c) = compose();
    let svc = &c["services"]["approvals"];
    let src = mount_source(svc, "/etc/portcullis/approvals.toml").expect("approvals config mount");
    let cfg =
        portcullis_approvals::config::Config::load(&root().join(src.trim_start_matches("./")))
            .unwrap_or_else(|e| panic!("{e}"));
    let (_, port) = split_host_port(&cfg.listen).unwrap();
    assert!(container_ports(svc).contains(&port));
    // The gateway trusts the key the service signs with.
    let gw_src =
        mount_source(&c["services"]["gateway"], "/etc/portcullis/portcullis.toml").unwrap();
    let gw = Config::load(&root().join(gw_src.trim_start_matches("./"))).unwrap();
    let seed = std::fs::read_to_string(root().join("deploy/secrets/approvals_signing_key.example"))
        .expect("example signing key");
    let key = portcullis::approvals::protocol::key_from_seed(&seed).expect("seed");
    assert_eq!(
        gw.approvals.public_key.as_deref(),
        Some(portcullis::approvals::protocol::public_key_b64(&key).as_str())
    );
    assert_eq!(
        cfg.identity.issuers[0].issuer,
        gw.identity.issuers[0].issuer
    );
}
