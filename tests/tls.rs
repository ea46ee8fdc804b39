//! `rediss://`: a real redis-server with TLS, its certificate signed by a private
//! CA made for the test with the openssl command. FalkorDB's build of Redis has no
//! TLS, so this uses Debian's (installed by scripts/setup.sh), or the server in
//! `SECONDME_TLS_REDIS_SERVER`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDir;
use redis::AsyncCommands;
use secondme::config::{Config, Overrides};
use secondme::connection;

/// A TLS redis-server, killed on drop (and then its directory removed).
struct TlsServer {
    child: Child,
    dir: TestDir,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_capable_server() -> PathBuf {
    let path = std::env::var_os("SECONDME_TLS_REDIS_SERVER")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/redis-server"), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (Debian's redis-server has TLS), \
         or set SECONDME_TLS_REDIS_SERVER",
        path.display()
    );
    path
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for localhost signed by it.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &[
                "req", "-x509", "-days", "1", "-keyout", "ca.key", "-out", "ca.crt",
            ][..],
            &ec,
            &[
                "-subj",
                "/CN=SecondMe test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req", "-keyout", "server.key", "-out", "server.csr"][..],
            &ec,
            &["-subj", "/CN=localhost"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

fn start_tls_server(name: &str) -> TlsServer {
    let dir = TestDir::new(&format!("tls-{name}"));
    make_certificates(&dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(tls_capable_server())
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let server = TlsServer { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn config(url: &str, ca: Option<&Path>, dir: &Path) -> anyhow::Result<Config> {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            tls_ca_file: ca.map(Path::to_path_buf),
            ..Overrides::default()
        },
    )
}

#[tokio::test]
async fn rediss_with_a_private_ca_works_and_an_unknown_ca_is_refused() {
    let server = start_tls_server("ca");
    let url = format!("rediss://localhost:{}", server.port);
    let ca = server.dir.join("ca.crt");

    let trusted = config(&url, Some(&ca), &server.dir).expect("config");
    let client = connection::client_for(&trusted).expect("client");
    let mut con = connection::manager(&client, None)
        .await
        .expect("TLS connection verified against the private CA");
    let _: () = con.set("tls-check", "over TLS").await.expect("set");
    let back: String = con.get("tls-check").await.expect("get");
    assert_eq!(back, "over TLS");

    // The public roots do not know this CA: the connection must fail, not fall back.
    let untrusted = connection::open_client(&url).expect("client");
    let refused = connection::manager(&untrusted, None)
        .await
        .expect_err("a certificate from an unknown CA is refused");
    let text = format!("{refused:#}").to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("issuer"),
        "the error says why: {text}"
    );

    // A CA file only makes sense for rediss://.
    let plain = config(
        &format!("redis://localhost:{}", server.port),
        Some(&ca),
        &server.dir,
    )
    .expect("config");
    let err = connection::client_for(&plain).expect_err("redis:// with a CA file");
    assert!(
        format!("{err:#}").contains("not a rediss:// URL"),
        "{err:#}"
    );
}
