//! A real SMTP server for the tests: aiosmtpd (from PyPI, installed once into target/tools) running
//! `smtp_server.py`, which writes every message it accepts to a folder before answering 250.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The aiosmtpd release the tests use.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// A message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    /// The envelope sender.
    #[allow(dead_code)]
    pub from: String,
    pub to: Vec<String>,
    pub tls: bool,
    pub authenticated: bool,
    /// The raw message: headers and body.
    pub data: String,
}

impl Mail {
    /// The message's text, with quoted-printable soft line breaks and `=3D` undone (enough to search it).
    pub fn text(&self) -> String {
        self.data
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=")
    }
}

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// TLS and authentication the server requires.
#[derive(Default)]
pub struct SmtpOptions<'a> {
    /// Certificate and key (PEM files): STARTTLS is required.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// User and password: authentication is required.
    pub auth: Option<(&'a str, &'a str)>,
    /// With `tls`: TLS from the first byte (SMTPS, port 465 style) instead of STARTTLS.
    pub implicit_tls: bool,
    /// With `auth`: every authentication fails with a reply that repeats the credentials the client sent, in base64
    /// and decoded.
    pub echo_auth: bool,
}

impl SmtpServer {
    pub fn start(options: SmtpOptions<'_>) -> SmtpServer {
        let python = python();
        let dir = tempfile::tempdir().expect("mail folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((cert, key)) = options.tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
            if options.implicit_tls {
                command.arg("--implicit-tls");
            }
        }
        if let Some((user, password)) = options.auth {
            command.args(["--user", user, "--password", password]);
            if options.echo_auth {
                command.arg("--echo-auth");
            }
        }
        let mut child = command.spawn().expect("the SMTP server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        stdout.read_line(&mut line).expect("the SMTP server speaks");
        assert_eq!(line.trim(), "READY", "the SMTP server did not start");
        // The rest is read to the end: a line printed later must not meet a closed pipe and stop the server.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        SmtpServer { port, dir, child }
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Mail> {
        let mut mails = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("mail folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read(&path).expect("a message");
                mails.push(serde_json::from_slice(&text).expect("a message as JSON"));
            }
        }
        mails
    }

    /// The messages to `address`.
    pub fn to(&self, address: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Closing its standard input stops it; kill in case it hangs.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python with aiosmtpd: a virtual environment under target/tools, made once (a lock keeps two test binaries
/// from making it at the same time).
fn python() -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools");
    std::fs::create_dir_all(&tools).expect("target/tools");
    let venv = tools.join("aiosmtpd-1.4.6");
    let python = venv.join("bin/python");
    let lock = std::fs::File::create(tools.join("aiosmtpd.lock")).expect("lock file");
    lock.lock().expect("lock");
    if !venv.join("installed").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                AIOSMTPD,
            ])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install {AIOSMTPD} failed");
        std::fs::write(venv.join("installed"), AIOSMTPD).expect("marker");
    }
    python
}
