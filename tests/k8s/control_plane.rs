//! A real Kubernetes control plane for integration tests: etcd and kube-apiserver as child processes on
//! loopback, in the manner of controller-runtime's envtest (no kubelet, scheduler or controller-manager).
//!
//! - Binaries: `KUBEBUILDER_ASSETS` (a directory with `etcd` and `kube-apiserver`), or the per-binary
//!   overrides `TEST_ASSET_ETCD` / `TEST_ASSET_KUBE_APISERVER`; otherwise `scripts/envtest-assets.sh` builds
//!   them once into `<target>/envtest/<kubernetes version>/` (under a lock file, so concurrent test
//!   processes never build at the same time).
//! - Security: TLS with a generated serving CA, RBAC authorization, users authenticated by client
//!   certificates from a generated client CA (CN = user, O = group), and service-account signing keys, so
//!   the TokenRequest API works.
//! - Logs: each process writes to `<name>.log` in the plane's temporary directory, or in `ENVTEST_LOG_DIR`
//!   when that is set (kept after the run). Start-up failures quote the end of the failing log.
//!
//! Start the plane from a thread that outlives it (the test binary's main thread): the child processes get
//! `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned them exits.

// The harness's API is for every test in this binary; not all of it is used at any one time.
#![allow(dead_code)]

use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SigningKey,
};

use crate::tools::target_dir;

/// Errors from the harness. Test functions can `?` them into `libtest_mimic::Failed`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The build script; its `KUBERNETES_VERSION` names the cache directory, so bumping it rebuilds.
const ASSETS_SCRIPT: &str = include_str!("../../scripts/envtest-assets.sh");
const ASSETS_SCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/envtest-assets.sh");

const ETCD_START_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const LOG_TAIL_LINES: usize = 40;

/// The Kubernetes version `scripts/envtest-assets.sh` builds (its `KUBERNETES_VERSION`), e.g. `v1.34.4`.
pub fn kubernetes_version() -> &'static str {
    ASSETS_SCRIPT
        .lines()
        .find_map(|line| line.trim().strip_prefix("KUBERNETES_VERSION="))
        .and_then(|rest| rest.split('"').nth(1))
        .expect("scripts/envtest-assets.sh sets KUBERNETES_VERSION=\"...\"")
}

/// The directory holding `etcd` and `kube-apiserver`: `KUBEBUILDER_ASSETS` if set, else
/// `<target>/envtest/<kubernetes version>/`, built by `scripts/envtest-assets.sh` when missing (a cold build
/// takes 10+ minutes on 2 cores; the script prints its progress to stderr).
pub fn assets_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        for bin in ["etcd", "kube-apiserver"] {
            if !dir.join(bin).is_file() {
                return Err(format!("KUBEBUILDER_ASSETS={} has no {bin}", dir.display()).into());
            }
        }
        return Ok(dir);
    }

    let root = target_dir().join("envtest");
    let dir = root.join(kubernetes_version());
    fs::create_dir_all(&root)?;
    let lock = File::create(root.join(".build.lock"))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "control plane: waiting for another process building {}",
            dir.display()
        );
        lock.lock()?;
    }
    // The script returns at once when both binaries are there at the expected versions.
    let status = Command::new("bash")
        .arg(ASSETS_SCRIPT_PATH)
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("running {ASSETS_SCRIPT_PATH}: {e}"))?;
    drop(lock);
    if !status.success() {
        return Err(format!(
            "{ASSETS_SCRIPT_PATH} {} failed ({status}); set KUBEBUILDER_ASSETS to a directory with \
             etcd and kube-apiserver to use prebuilt binaries",
            dir.display()
        )
        .into());
    }
    Ok(dir)
}

/// Paths of the two binaries, honouring the per-binary overrides.
fn binaries() -> Result<(PathBuf, PathBuf), Error> {
    let etcd = std::env::var_os("TEST_ASSET_ETCD").filter(|p| !p.is_empty());
    let apiserver = std::env::var_os("TEST_ASSET_KUBE_APISERVER").filter(|p| !p.is_empty());
    if let (Some(etcd), Some(apiserver)) = (&etcd, &apiserver) {
        return Ok((etcd.into(), apiserver.into()));
    }
    let dir = assets_dir()?;
    Ok((
        etcd.map_or_else(|| dir.join("etcd"), PathBuf::from),
        apiserver.map_or_else(|| dir.join("kube-apiserver"), PathBuf::from),
    ))
}

/// A running etcd + kube-apiserver. Dropping it (or [`ControlPlane::stop`]) kills both processes and removes
/// their temporary directory.
pub struct ControlPlane {
    runtime: Option<tokio::runtime::Runtime>,
    server_url: String,
    etcd_url: String,
    serving_ca_pem: String,
    client_ca: CertifiedIssuer<'static, KeyPair>,
    apiserver: Option<Process>,
    etcd: Option<Process>,
    log_dir: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free loopback ports and waits until the apiserver is ready
    /// (`/readyz` answers ok and the `default` namespace exists). Builds the binaries first if needed.
    pub fn start() -> Result<Self, Error> {
        install_crypto_provider();
        let (etcd_bin, apiserver_bin) = binaries()?;
        let dir = tempfile::Builder::new().prefix("envtest-").tempdir()?;
        let log_dir = match std::env::var_os("ENVTEST_LOG_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => dir.path().to_path_buf(),
        };
        fs::create_dir_all(&log_dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("control-plane")
            .enable_all()
            .build()?;

        let pki = Pki::generate()?;
        let pki_dir = dir.path().join("pki");
        fs::create_dir_all(&pki_dir)?;
        let serving_cert = pki_dir.join("apiserver.crt");
        let serving_key = pki_dir.join("apiserver.key");
        let client_ca_file = pki_dir.join("client-ca.crt");
        let sa_key = pki_dir.join("service-account.key");
        let sa_pub = pki_dir.join("service-account.pub");
        write_private(&serving_cert, &pki.serving_cert_pem)?;
        write_private(&serving_key, &pki.serving_key_pem)?;
        write_private(&client_ca_file, &pki.client_ca.pem())?;
        write_private(&sa_key, &pki.service_account_key_pem)?;
        write_private(&sa_pub, &pki.service_account_pub_pem)?;

        let [etcd_port, peer_port, apiserver_port] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let server_url = format!("https://127.0.0.1:{apiserver_port}");

        let mut plane = ControlPlane {
            runtime: Some(runtime),
            server_url,
            etcd_url,
            serving_ca_pem: pki.serving_ca_pem,
            client_ca: pki.client_ca,
            apiserver: None,
            etcd: None,
            log_dir,
            dir: Some(dir),
        };

        // etcd
        let started = Instant::now();
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Command::new(&etcd_bin);
        etcd.arg("--name=envtest")
            .arg(format!(
                "--data-dir={}",
                plane.tmp_path().join("etcd").display()
            ))
            .arg(format!("--listen-client-urls={}", plane.etcd_url))
            .arg(format!("--advertise-client-urls={}", plane.etcd_url))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=envtest={peer_url}"))
            .arg("--log-level=warn");
        if supports_flag(&etcd_bin, "unsafe-no-fsync") {
            etcd.arg("--unsafe-no-fsync=true");
        }
        plane.etcd = Some(Process::spawn("etcd", etcd, &plane.log_dir)?);
        plane.wait_for_etcd(started + ETCD_START_TIMEOUT)?;
        let etcd_ready = started.elapsed();

        // kube-apiserver, with controller-runtime envtest's defaults plus client-certificate users.
        let started = Instant::now();
        let mut apiserver = Command::new(&apiserver_bin);
        apiserver
            .arg(format!("--etcd-servers={}", plane.etcd_url))
            .arg("--advertise-address=127.0.0.1")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={apiserver_port}"))
            .arg(format!(
                "--cert-dir={}",
                plane.tmp_path().join("apiserver").display()
            ))
            .arg(format!("--tls-cert-file={}", serving_cert.display()))
            .arg(format!("--tls-private-key-file={}", serving_key.display()))
            .arg(format!("--client-ca-file={}", client_ca_file.display()))
            .arg("--authorization-mode=RBAC")
            .arg(format!("--service-account-issuer={}/", plane.server_url))
            .arg(format!("--service-account-key-file={}", sa_pub.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key.display()
            ))
            // No controller-manager creates the `default` service accounts this plugin insists on.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--allow-privileged=true")
            // A flag value only: nothing routes to it.
            .arg("--service-cluster-ip-range=10.0.0.0/24");
        plane.apiserver = Some(Process::spawn("kube-apiserver", apiserver, &plane.log_dir)?);
        plane.wait_for_apiserver(started + APISERVER_START_TIMEOUT)?;
        eprintln!(
            "control plane: etcd ready in {:.1}s, kube-apiserver {} ready at {} in {:.1}s (logs in {})",
            etcd_ready.as_secs_f64(),
            kubernetes_version(),
            plane.server_url,
            started.elapsed().as_secs_f64(),
            plane.log_dir.display()
        );
        Ok(plane)
    }

    /// The apiserver's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// etcd's client URL, `http://127.0.0.1:<port>`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// PEM of the CA that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.serving_ca_pem
    }

    /// Where the `etcd.log` and `kube-apiserver.log` files are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The runtime the harness's clients are bound to: a multi-thread runtime shared by every test.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("control plane is running")
    }

    /// Runs a future to completion on the shared runtime (callable from many test threads at once, not
    /// from inside async code).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// A client authenticated as `admin` in `system:masters` (everything is allowed).
    pub fn admin_client(&self) -> kube::Client {
        self.client_for("admin", &["system:masters"])
    }

    /// A client authenticated by a client certificate as `user` in `groups` (and, as for every
    /// authenticated user, `system:authenticated`). What it may do is up to RBAC.
    pub fn client_for(&self, user: &str, groups: &[&str]) -> kube::Client {
        let config = self.config_for(user, groups);
        let _runtime = self.runtime().enter();
        kube::Client::try_from(config).expect("kube client from generated config")
    }

    /// The `kube::Config` behind [`ControlPlane::client_for`], for code that builds its own client.
    pub fn config_for(&self, user: &str, groups: &[&str]) -> kube::Config {
        let (cert_pem, key_pem) = self
            .client_certificate(user, groups)
            .expect("issuing a client certificate");
        let mut config = kube::Config::new(self.server_url.parse().expect("server URL"));
        config.root_cert = Some(vec![
            pem_to_der(&self.serving_ca_pem).expect("serving CA PEM"),
        ]);
        config.auth_info = AuthInfo {
            client_certificate_data: Some(BASE64.encode(cert_pem)),
            client_key_data: Some(BASE64.encode(key_pem).into()),
            ..AuthInfo::default()
        };
        config
    }

    /// The kubeconfig (certificate data embedded) for `user` in `groups`; see [`ControlPlane::client_for`].
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> Result<Kubeconfig, Error> {
        let (cert_pem, key_pem) = self.client_certificate(user, groups)?;
        let name = "envtest".to_string();
        Ok(Kubeconfig {
            clusters: vec![NamedCluster {
                name: name.clone(),
                cluster: Some(Cluster {
                    server: Some(self.server_url.clone()),
                    certificate_authority_data: Some(BASE64.encode(&self.serving_ca_pem)),
                    ..Cluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: user.to_string(),
                auth_info: Some(AuthInfo {
                    client_certificate_data: Some(BASE64.encode(cert_pem)),
                    client_key_data: Some(BASE64.encode(key_pem).into()),
                    ..AuthInfo::default()
                }),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: name.clone(),
                context: Some(Context {
                    cluster: name.clone(),
                    user: Some(user.to_string()),
                    namespace: Some("default".to_string()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(name),
            api_version: Some("v1".to_string()),
            kind: Some("Config".to_string()),
            ..Kubeconfig::default()
        })
    }

    /// Writes [`ControlPlane::kubeconfig`] to `path` (mode 0600), for a child process such as the
    /// controller binary to use through `KUBECONFIG`.
    pub fn write_kubeconfig(
        &self,
        path: impl AsRef<Path>,
        user: &str,
        groups: &[&str],
    ) -> Result<(), Error> {
        let yaml = serde_yaml::to_string(&self.kubeconfig(user, groups)?)?;
        write_private(path.as_ref(), &yaml)?;
        Ok(())
    }

    /// Kills both processes (apiserver first; SIGTERM, then SIGKILL after a grace period) and removes the
    /// temporary directory. Dropping the plane does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(p) = self.apiserver.take() {
            p.stop(STOP_GRACE);
        }
        if let Some(p) = self.etcd.take() {
            p.stop(STOP_GRACE);
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            eprintln!("control plane: removing its temporary directory: {e}");
        }
    }

    fn tmp_path(&self) -> &Path {
        self.dir.as_ref().expect("control plane is running").path()
    }

    /// A new client key and a certificate for it, signed by the client CA, with subject `O=<group>...,
    /// CN=<user>`. rcgen keeps one value per attribute type, so it signs a placeholder subject that is then
    /// swapped for the real one and the certificate signed again.
    fn client_certificate(&self, user: &str, groups: &[&str]) -> Result<(String, String), Error> {
        let key = KeyPair::generate()?;
        let placeholder = format!("envtest-subject-{}", uuid::Uuid::new_v4());
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, placeholder.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.client_ca)?;

        let mut subject: Vec<(&[u8], &str)> = groups.iter().map(|g| (OID_O, *g)).collect();
        subject.push((OID_CN, user));
        let der = der::replace_subject(
            cert.der(),
            &der::name(&[(OID_CN, &placeholder)]),
            &der::name(&subject),
            self.client_ca.key(),
        )?;
        Ok((pem("CERTIFICATE", &der), key.serialize_pem()))
    }

    fn wait_for_etcd(&mut self, deadline: Instant) -> Result<(), Error> {
        let addr = self.etcd_url.trim_start_matches("http://").to_string();
        loop {
            let last = match etcd_health(&addr) {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            self.check_alive("etcd")?;
            if Instant::now() >= deadline {
                return Err(self.start_failure("etcd", &format!("not healthy in time: {last}")));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn wait_for_apiserver(&mut self, deadline: Instant) -> Result<(), Error> {
        let client = self.admin_client();
        loop {
            let attempt = self.block_on(async {
                let ready = tokio::time::timeout(Duration::from_secs(5), async {
                    let request = http::Request::get("/readyz").body(Vec::new())?;
                    client.request_text(request).await?;
                    let namespaces =
                        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
                    match namespaces.get_opt("default").await? {
                        Some(_) => Ok::<_, Error>(()),
                        None => Err("the default namespace does not exist yet".into()),
                    }
                });
                ready.await.unwrap_or_else(|_| Err("timed out".into()))
            });
            let last = match attempt {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            self.check_alive("kube-apiserver")?;
            if Instant::now() >= deadline {
                return Err(
                    self.start_failure("kube-apiserver", &format!("not ready in time: {last}"))
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn check_alive(&mut self, name: &str) -> Result<(), Error> {
        let process = match name {
            "etcd" => self.etcd.as_mut(),
            _ => self.apiserver.as_mut(),
        };
        if let Some(p) = process
            && let Some(status) = p.child.try_wait()?
        {
            return Err(self.start_failure(name, &format!("exited early ({status})")));
        }
        Ok(())
    }

    fn start_failure(&self, name: &str, what: &str) -> Error {
        let log = self.log_dir.join(format!("{name}.log"));
        format!(
            "{name} {what}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            log.display(),
            tail(&log, LOG_TAIL_LINES)
        )
        .into()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs rustls's ring provider as the process default (kube and reqwest are built without one).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A child process whose stdout and stderr go to `<log_dir>/<name>.log`.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, log_dir: &Path) -> Result<Self, Error> {
        let log = File::create(log_dir.join(format!("{name}.log")))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                // Die with the test binary, even if it is killed before its destructors run.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting {name} ({:?}): {e}", command.get_program()))?;
        Ok(Process { name, child })
    }

    fn stop(mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain syscall on our own, not yet reaped, child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("control plane: {} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Reached only if `stop` was not (a panic mid-start): never leave the process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Key material for one plane.
struct Pki {
    serving_ca_pem: String,
    serving_cert_pem: String,
    serving_key_pem: String,
    client_ca: CertifiedIssuer<'static, KeyPair>,
    service_account_key_pem: String,
    service_account_pub_pem: String,
}

impl Pki {
    fn generate() -> Result<Self, Error> {
        let serving_ca =
            CertifiedIssuer::self_signed(ca_params("envtest serving CA")?, KeyPair::generate()?)?;
        let serving_key = KeyPair::generate()?;
        let mut serving =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        serving.distinguished_name = DistinguishedName::new();
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &serving_ca)?;

        let client_ca =
            CertifiedIssuer::self_signed(ca_params("envtest client CA")?, KeyPair::generate()?)?;
        // ECDSA P-256: the apiserver signs service-account tokens with ES256 using the PKCS#8 private key
        // and verifies them with the SPKI public key (it does not take the public half from a PKCS#8 file).
        let service_account_key = KeyPair::generate()?;
        Ok(Pki {
            serving_ca_pem: serving_ca.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            client_ca,
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_pub_pem: service_account_key.public_key_pem(),
        })
    }
}

fn ca_params(common_name: &str) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// X.500 attribute types (DER contents of the OIDs 2.5.4.3 and 2.5.4.10).
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

/// Just enough DER to rewrite a certificate's subject.
mod der {
    use super::{Error, SigningKey};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const UTF8_STRING: u8 = 0x0c;
    const BIT_STRING: u8 = 0x03;

    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// `(header length, total length)` of the element at the start of `der`.
    fn element(der: &[u8]) -> Result<(usize, usize), Error> {
        let first = *der.get(1).ok_or("DER: truncated header")?;
        let (header, len) = if first < 0x80 {
            (2, first as usize)
        } else {
            let n = (first & 0x7f) as usize;
            let bytes = der.get(2..2 + n).ok_or("DER: truncated length")?;
            (
                2 + n,
                bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
            )
        };
        if header + len > der.len() {
            return Err("DER: element longer than its input".into());
        }
        Ok((header, header + len))
    }

    /// A Name with one attribute per RDN, in order; values as UTF8String (as rcgen writes them).
    pub fn name(attributes: &[(&[u8], &str)]) -> Vec<u8> {
        let mut rdns = Vec::new();
        for (oid, value) in attributes {
            let atv = [tlv(OID, oid), tlv(UTF8_STRING, value.as_bytes())].concat();
            rdns.extend(tlv(SET, &tlv(SEQUENCE, &atv)));
        }
        tlv(SEQUENCE, &rdns)
    }

    /// Replaces the (unique) `old` name in the certificate's TBSCertificate with `new` and re-signs it.
    pub fn replace_subject(
        cert: &[u8],
        old: &[u8],
        new: &[u8],
        issuer_key: &impl SigningKey,
    ) -> Result<Vec<u8>, Error> {
        let (header, end) = element(cert)?;
        let body = &cert[header..end];
        let (tbs_header, tbs_end) = element(body)?;
        let tbs = &body[tbs_header..tbs_end];
        let (_, alg_end) = element(&body[tbs_end..])?;
        let signature_algorithm = &body[tbs_end..tbs_end + alg_end];

        let mut hits = tbs
            .windows(old.len())
            .enumerate()
            .filter(|(_, w)| *w == old);
        let (at, _) = hits.next().ok_or("placeholder subject not found")?;
        if hits.next().is_some() {
            return Err("placeholder subject found twice".into());
        }
        let tbs = tlv(
            SEQUENCE,
            &[&tbs[..at], new, &tbs[at + old.len()..]].concat(),
        );
        let mut signature = vec![0u8]; // no unused bits
        signature.extend(issuer_key.sign(&tbs)?);
        Ok(tlv(
            SEQUENCE,
            &[
                tbs.as_slice(),
                signature_algorithm,
                &tlv(BIT_STRING, &signature),
            ]
            .concat(),
        ))
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, Error> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(BASE64.decode(body)?)
}

fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// Three distinct free loopback ports (all held open until each is picked).
fn free_ports() -> io::Result<[u16; 3]> {
    let listeners = [
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
    ];
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Whether `binary --help` mentions `--<flag>`.
fn supports_flag(binary: &Path, flag: &str) -> bool {
    Command::new(binary)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map(|out| {
            let needle = format!("--{flag}");
            String::from_utf8_lossy(&out.stdout).contains(&needle)
                || String::from_utf8_lossy(&out.stderr).contains(&needle)
        })
        .unwrap_or(false)
}

/// One `GET /health` to etcd's client URL over plain HTTP/1.0.
fn etcd_health(addr: &str) -> Result<(), Error> {
    let mut stream = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let ok_status = response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200");
    if ok_status && response.contains("\"health\":\"true\"") {
        return Ok(());
    }
    Err(format!(
        "/health answered {:?}",
        response.lines().last().unwrap_or_default()
    )
    .into())
}

/// The last `n` lines of a file (or why it could not be read).
fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read it: {e})"),
    }
}
