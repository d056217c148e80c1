//! `run --policy FILE` with notifications: the Secrets a policy names, read from a folder shaped as Kubernetes
//! mounts them (`--secrets DIR`: DIR/<name>/<key>), and the pending notices kept in a state file (`--state FILE`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CliError;
use crate::notice::{Notice, Pending};
use crate::notify::{self, Notifier, SecretEntries};
use crate::policy::{NotifySpec, PendingNotice};

/// The state file: what `run --policy FILE` keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    #[serde(default)]
    notices: Vec<PendingNotice>,
}

/// The notifier of a policy, from the folder of Secrets.
pub(super) fn notifier(policy: &str, spec: &NotifySpec, dir: &Path) -> Result<Notifier, CliError> {
    let mut secrets = SecretEntries::new();
    for name in notify::secret_names(spec) {
        secrets.insert(name.clone(), read_folder(dir, &name)?);
    }
    let templates = match notify::template_source(spec) {
        Some(notify::TemplateSource::ConfigMap(name) | notify::TemplateSource::Secret(name)) => {
            notify::template_texts(&read_folder(dir, &name)?)
        }
        None => BTreeMap::new(),
    };
    Notifier::new(policy, spec, &secrets, &templates)
        .map_err(|e| CliError::Invalid(format!("notifications: {e}")))
}

/// DIR/<name>/<key> files as a Secret's entries; dotfiles (a mounted Secret's `..data`) are skipped.
fn read_folder(dir: &Path, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CliError> {
    let folder = dir.join(name);
    let unreadable = |e: std::io::Error| {
        CliError::Invalid(format!(
            "the Secret {name} named by spec.notify: cannot read {}: {e}",
            folder.display()
        ))
    };
    let mut entries = BTreeMap::new();
    for entry in std::fs::read_dir(&folder).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let key = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if key.starts_with('.') || !path.is_file() {
            continue;
        }
        entries.insert(
            key,
            crate::files::read_at_most(&path, crate::files::SECRET_BYTES).map_err(|e| {
                CliError::Invalid(format!(
                    "the Secret {name} named by spec.notify: {}: {e}",
                    path.display()
                ))
            })?,
        );
    }
    Ok(entries)
}

/// The pending notices in the state file; none when it does not exist yet.
pub(super) fn read_state(path: &Path) -> Result<Pending, CliError> {
    let state: State = match crate::files::read_at_most(path, crate::files::REPORT_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Invalid(format!(
                "the state file {} cannot be read as notices: {e}",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => {
            return Err(CliError::Invalid(format!(
                "cannot read the state file {}: {e}",
                path.display()
            )));
        }
    };
    Ok(Pending::new(
        state.notices.iter().filter_map(PendingNotice::to_notice),
    ))
}

/// Write the pending notices, replacing the file whole (written beside it, then renamed).
pub(super) fn write_state(path: &Path, notices: &[Notice]) -> Result<(), CliError> {
    let state = State {
        notices: notices.iter().map(PendingNotice::from).collect(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| CliError::Failed(e.to_string()))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, json)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot write the state file {}: {e}; the notices of this run are lost, and their users will be warned again",
                path.display()
            ))
        })
}
