//! A real Prometheus (Debian's package, `scripts/prometheus.sh`) scraping the controller, and the dashboard's and
//! alerts' queries run on it as Grafana and the rule evaluator would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::Value as Json;

use crate::tools::prometheus_binary;

pub struct PrometheusProcess {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl PrometheusProcess {
    /// Prometheus scraping `127.0.0.1:metrics_port` every second, labelling its series `pod="controller-0"` as a
    /// ServiceMonitor's relabelling would.
    pub fn start(metrics_port: u16) -> Result<Self, Failed> {
        let binary = prometheus_binary()?;
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: qlik-license-reclaimer\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n        labels: {{pod: controller-0}}\n"
            ),
        )?;
        let log = dir.path().join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self {
            child,
            port,
            _dir: dir,
            log,
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query through the HTTP API; the `data` of a successful answer, the error of another.
    pub async fn query(&self, expr: &str) -> Result<Json, String> {
        crate::support::install_crypto();
        let answer: Json = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"].clone())
    }

    /// Waits (bounded) until `expr` returns at least one sample whose value is above `above`.
    pub async fn wait_for(&self, expr: &str, above: f64) -> Result<(), Failed> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.query(expr).await;
            if let Ok(data) = &last
                && data["result"].as_array().is_some_and(|samples| {
                    samples.iter().any(|s| {
                        s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(|v| v > above)
                    })
                })
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let up = self.query("up").await;
                return Err(format!(
                    "Prometheus never had {expr} > {above} (last answer {last:?}; up: {up:?}); log:\n{}",
                    self.log()
                )
                .into());
            }
            // Prometheus scrapes on its own clock; its API is the only way to see what it has.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dashboard query as Grafana sends it: the variables filled in. A variable's `label_values(SELECTOR, label)`
/// is Grafana's, answered from the series of SELECTOR: that selector is what runs.
pub fn as_grafana_sends_it(expr: &str, namespace: &str) -> String {
    let expr = match expr
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|inner| inner.rsplit_once(','))
    {
        Some((selector, _label)) => selector.trim(),
        None => expr,
    };
    expr.replace("$namespace", namespace)
        .replace("$policy", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}
