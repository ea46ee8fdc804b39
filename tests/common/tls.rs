//! TLS for tests: a private CA and a certificate for localhost (and 127.0.0.1)
//! signed by it, made with the openssl command, and a `redis-server` that speaks
//! TLS. FalkorDB's build of Redis (the suite's own) has no TLS, so this is
//! Debian's (installed by scripts/setup.sh), or the server `SECONDME_TLS_REDIS_SERVER`
//! names.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::nodes;

/// The CA's certificate, in the directory certificates are made in.
pub const CA: &str = "ca.crt";
/// The server's certificate and key, beside it.
pub const CERT: &str = "server.crt";
pub const KEY: &str = "server.key";

/// A `redis-server` built with TLS.
pub fn tls_capable_server() -> PathBuf {
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

/// Makes, in `dir`, a CA ([`CA`]) and a certificate for localhost and 127.0.0.1
/// signed by it ([`CERT`], [`KEY`]), for servers and for their links to each other. Each call makes a CA of its own, which
/// trusts no other call's certificates.
pub fn make_certificates(dir: &Path) {
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
                "req", "-x509", "-days", "1", "-keyout", "ca.key", "-out", CA,
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
            &["req", "-keyout", KEY, "-out", "server.csr"][..],
            &ec,
            &["-subj", "/CN=localhost"],
        ]
        .concat(),
    );
    // Also a client certificate: the nodes of a Cluster present it to each other
    // on the bus, which asks for one whatever `tls-auth-clients` says.
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
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
            CA,
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            CERT,
            "-extfile",
            "server.ext",
        ],
    );
}

/// Certificates made in `dir` and the TLS server, for a TLS deployment
/// ([`nodes::Transport::Tls`]).
pub fn deployment(dir: &Path) -> nodes::Tls {
    make_certificates(dir);
    nodes::Tls {
        server: tls_capable_server(),
        ca: dir.join(CA),
        cert: dir.join(CERT),
        key: dir.join(KEY),
    }
}
