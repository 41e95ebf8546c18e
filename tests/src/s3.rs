//! An S3 API server on loopback for the object-storage tests: PyPI `moto`'s standalone server
//! from `$MOLDOPS_S3_PYTHON` (its own venv, installed by `.ci/run`, which also holds `pyarrow`
//! for reading the lake over S3 as another tool would). Killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// Credentials the server takes (any; moto checks none).
pub const ACCESS_KEY: &str = "test";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "test";
/// Region of the buckets.
pub const REGION: &str = "us-east-1";

/// The interpreter that has moto and pyarrow.
pub fn python() -> String {
    let default = format!("{}/.cache/moldops-s3-venv/bin/python", std::env::var("HOME").unwrap_or_default());
    std::env::var("MOLDOPS_S3_PYTHON").unwrap_or(default)
}

/// A running moto server.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts one on a free port and waits until it accepts connections.
    pub fn start() -> S3Server {
        let port = crate::free_port();
        let python = python();
        let mut child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the S3 server with {python} (moto installed by .ci/run): {e}")
            });
        // Werkzeug says where it listens on stderr once it accepts connections.
        let err = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(err).lines();
        let ready = lines.by_ref().take(50).map_while(Result::ok).any(|l| l.contains("Running on"));
        assert!(ready, "the S3 server did not start");
        std::thread::spawn(move || lines.for_each(drop));
        S3Server { child, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto takes an unsigned request).
    pub fn create_bucket(&self, name: &str) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {name}: {answer}");
    }

    /// The storage layer's settings for this server (`Store::open_with`).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint()),
            ("aws_access_key_id", ACCESS_KEY.into()),
            ("aws_secret_access_key", SECRET_KEY.into()),
            ("aws_region", REGION.into()),
        ]
    }

    /// The usual AWS environment of a process that uses this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
