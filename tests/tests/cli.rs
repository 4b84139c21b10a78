//! The command line: bad configuration is refused with file, line and key
//! before anything starts; decision logs can be JSON lines with every
//! field a SIEM needs.

use std::time::Duration;

use portcullis_e2e::clients::{psql, Run};
use portcullis_e2e::{idp, portcullis_bin, temp_dir, wait_for, Gateway, GatewayOptions};

#[test]
fn bad_config_is_refused_naming_file_line_and_key() {
    let dir = temp_dir("badcfg");
    let cfg = dir.join("portcullis.toml");
    std::fs::write(
        &cfg,
        "[gateway]\nlisten = \"127.0.0.1:6432\"\n\n[[identity.issuers]]\nissuer = \"https://idp\"\naudience = \"a\"\n\n[[connections]]\nname = \"db\"\nupstream = \"db:5432\"\nuser = \"svc\"\npassword_env = \"PW\"\ntls = \"maybe\"\n",
    )
    .unwrap();
    let r = Run::from(
        std::process::Command::new(portcullis_bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains(&format!(
            "{}:13: `connections[0].tls`: unknown variant `maybe`, expected one of `disable`, `require`, `verify-full`",
            cfg.display()
        )),
        "{}",
        r.all()
    );

    std::fs::write(&cfg, "[gateway]\nlisten = \"127.0.0.1:6432\"\nlisen = 1\n").unwrap();
    let r = Run::from(
        std::process::Command::new(portcullis_bin())
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains(&format!(
            "{}:3: `gateway.lisen`: unknown field `lisen`",
            cfg.display()
        )),
        "{}",
        r.all()
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn json_decision_logs_carry_user_fingerprint_action_reasons_and_policy_hash() {
    let gw = Gateway::start(GatewayOptions {
        log_format: "json".into(),
        ..Default::default()
    });
    let r = psql(
        &gw,
        "alice@example.com",
        &idp().token("alice"),
        &["-c", "delete from items"],
    );
    assert!(r.stderr.contains("denied"), "{}", r.all());
    let mut line = serde_json::Value::Null;
    wait_for("a JSON decision line", Duration::from_secs(10), || {
        line = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "portcullis::decision" && v["fields"]["action"] == "deny")
            .unwrap_or_default();
        !line.is_null()
    });
    let f = &line["fields"];
    assert_eq!(f["user"], "alice@example.com");
    assert_eq!(f["connection"], "app");
    assert_eq!(f["kind"], "delete");
    assert!(
        f["reasons"]
            .as_str()
            .unwrap_or_default()
            .contains("DELETE without WHERE"),
        "{line}"
    );
    assert_eq!(
        f["fingerprint"].as_str().unwrap_or_default().len(),
        16,
        "{line}"
    );
    assert_eq!(
        f["policy_hash"].as_str().unwrap_or_default().len(),
        16,
        "{line}"
    );
}
