//! The load generator (`bootgate-load`, used by `scripts/bench`) checked
//! against a real `bootgate serve`: it must count exactly what it sent, see
//! no errors where there are none, and count refusals where there are.
//!
//! The server is the `bootgate` that `cargo build` put beside `bootgate-load`
//! (`scripts/test` builds it first); the helpers are bootgate's own.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::*;

fn load(env: &Env, machine: Option<&str>, url_path: &str, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootgate-load"));
    cmd.arg(format!("https://127.0.0.1:{}{url_path}", env.port))
        .arg("--ca")
        .arg(env.path("ca/ca.crt"))
        .args(["--json", "--duration", "20"])
        .args(args);
    if let Some(name) = machine {
        cmd.arg("--cert")
            .arg(env.path(&format!("machines/{name}/client.crt")))
            .arg("--key")
            .arg(env.path(&format!("machines/{name}/client.key")));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "bootgate-load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn load_generator_counts_requests_bytes_and_refusals() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    let script = "#!ipxe\necho $machine_name\n";
    std::fs::write(env.files(&fp).join("boot.ipxe"), script).unwrap();
    std::fs::write(env.files(&fp).join("initrd"), vec![7u8; 300_000]).unwrap();
    let server = env.serve();
    let rendered_len = "#!ipxe\necho gw1\n".len() as u64;

    let kept = load(&env, Some("gw1"), "/boot/ipxe", &["-c", "4", "-n", "40"]);
    assert_eq!(kept["requests"], 40, "{kept:#}");
    assert_eq!(kept["error_total"], 0, "{kept:#}");
    assert_eq!(kept["connections"], 4, "{kept:#}");
    assert_eq!(kept["body_bytes"], 40 * rendered_len);
    assert!(kept["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    let fresh = load(
        &env,
        Some("gw1"),
        "/boot/ipxe",
        &[
            "-c",
            "2",
            "-n",
            "6",
            "--new-connection-per-request",
            "--tls",
            "1.2",
        ],
    );
    assert_eq!(fresh["requests"], 6, "{fresh:#}");
    assert_eq!(fresh["connections"], 6, "{fresh:#}");
    assert_eq!(fresh["error_total"], 0, "{fresh:#}");
    assert_eq!(fresh["tls_version"], "TLSv1_2");

    let pid = server.pid().to_string();
    let crowded = load(
        &env,
        Some("gw1"),
        "/files/initrd",
        &[
            "-c",
            "2",
            "-n",
            "4",
            "--idle",
            "3",
            "--idle-every",
            "0.05",
            "--slow",
            "2",
            "--watch-pid",
            &pid,
        ],
    );
    assert_eq!(crowded["requests"], 4, "{crowded:#}");
    assert_eq!(crowded["body_bytes"], 4 * 300_000);
    assert_eq!(crowded["crowd"]["idle_open"], 3, "{crowded:#}");
    assert_eq!(crowded["crowd"]["slow_open"], 2, "{crowded:#}");
    assert_eq!(crowded["crowd"]["failed"], 0, "{crowded:#}");
    assert_eq!(crowded["crowd"]["closed_early"], 0, "{crowded:#}");
    assert!(crowded["usage"]["hwm_kib"].as_u64().unwrap() > 0);

    let refused = load(&env, None, "/boot/ipxe", &["-c", "1", "-n", "3"]);
    assert_eq!(refused["requests"], 0, "{refused:#}");
    assert_eq!(refused["errors"]["status"], 3, "{refused:#}");
}
